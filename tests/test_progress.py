import io

from netspec.report.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_on_a_terminal_after_the_delay():
    out = Terminal()
    with Progress(100, stream=out, delay=0.0) as bar:
        bar.advance(50)
        bar.advance(50)
    text = out.getvalue()
    assert "50.0% of 100 parameters" in text and "100.0%" in text and text.endswith("\n")


def test_progress_is_silent_off_a_terminal_or_for_quick_builds():
    pipe = io.StringIO()
    with Progress(100, stream=pipe, delay=0.0) as bar:
        bar.advance(100)
    assert pipe.getvalue() == ""
    term = Terminal()
    with Progress(100, stream=term, delay=3600.0) as bar:
        bar.advance(100)
    assert term.getvalue() == ""
