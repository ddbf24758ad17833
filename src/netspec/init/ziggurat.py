"""Stream version 2's normal sampler: a vectorized ziggurat (Marsaglia & Tsang 2000) on raw bits.

The unnormalized half density ``f(x) = exp(-x^2 / 2)``, x >= 0, is covered by 256 layers of equal
area :data:`V`:

* layer 0, the base: the rectangle ``[0, Q] x [0, f(R)]``, ``Q = V / f(R)``; its part beyond
  :data:`R` stands for the tail ``x > R``, which has the same area (``V = R f(R) + int_R^inf f``);
* layer i = 1..255: the rectangle ``[0, x_i] x [f(x_i), f(x_{i-1})]`` with ``x_0 = 0`` (layer 1, the
  top one, reaches ``f = 1``) and ``x_255 = R`` (:data:`EDGES`, :data:`DENSITY`).

A value picks a layer uniformly, a signed point uniformly across the layer's width, and is accepted
at once when the point lies in the layer's *inner* part ``|x| < inner_i`` (``inner_0 = R``,
``inner_1 = 0``, ``inner_i = x_{i-1}``), entirely under the curve: 98.5 % of values.

Fast path, float32: 32-bit word ``k`` -> layer ``i = k & 255`` and ``j = (int32(k) >> 7) | 1``, an odd
integer in (-2^24, 2^24) carrying the sign and 23 bits of magnitude (exact in float32, symmetric
about 0); the value is ``fl32(j * W[i])`` with ``W[i] = fl32(fl64(scale * width_i) * 2^-24)``
(``width_0 = Q``, ``width_i = x_i``), accepted when ``|j| < K[i] = floor(2^24 inner_i / width_i)``.
float64: one 64-bit word per value, ``j = (int64(k) >> 10) | 1`` (odd, |j| < 2^53) and 2^-53, 2^53
in place of 2^-24, 2^24. Integer operations, one exactly rounded multiply and table look-ups only.

Rejected values are resolved afterwards, in position order, in rounds; each round draws two 64-bit
words ``a``, ``b`` per pending value from a second stream (all the ``a`` first, then the ``b``),
``u(w) = ((w >> 11) | 1) 2^-53`` in (0, 1), all in float64 with
:func:`netspec.init.portable_math.log64`:

* layer 0 (the tail): ``x = -ln u(a) / R``, ``y = -ln u(b)``; accepted when ``2y > x^2`` with value
  ``sign(j) (R + x) scale``, else the value stays pending in the tail;
* wedge of layer i >= 1: ``x = j width_i 2^-24`` (2^-53 for float64) and
  ``y = f(x_i) + u(a) (f(x_{i-1}) - f(x_i))``; accepted (value as on the fast path) when
  ``ln y < -x^2 / 2``, else ``b`` is a new candidate word (float32: its low 32 bits) through the fast
  path, pending again if that rejects it too.

The tables are float64 literals (not computed at import, so they do not depend on the platform's
libm); :func:`derive_tables` recomputes them with mpmath at 50 digits.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import ModuleType
from typing import Protocol

import numpy as np

from netspec.init import kernels
from netspec.init.portable_math import log64, scratch

LAYERS = 256
R = 3.654152885361009
"""Where the tail starts: right edge of layer 255, inner edge of the base."""
V = 0.004928673233974655
"""Area of every layer under ``exp(-x^2 / 2)``."""
Q = 3.910757959524916
"""Width of the base layer, ``V / f(R)``."""

EDGES = (
    0.2152418959848817, 0.2861745917920725, 0.33573751921442524, 0.37512133287838056,
    0.40838913461199117, 0.4375184022078717, 0.46363433679088223, 0.487443966139236,
    0.5094233296020918, 0.5299097206615582, 0.5491517023271651, 0.5673382570538188,
    0.5846167661063794, 0.6011046177559927, 0.6168969900077514, 0.6320722363860611,
    0.6466957148949938, 0.6608225742444197, 0.6744998228372938, 0.6877678927957885,
    0.7006618411068151, 0.7132122851909759, 0.7254461409099996, 0.7373872114342956,
    0.7490566620178153, 0.7604734064301081, 0.7716544242245681, 0.7826150233072331,
    0.7933690588406233, 0.8039291169899713, 0.8143066701352152, 0.8245122087522921,
    0.8345553540863822, 0.8444449549091539, 0.8541891710081638, 0.8637955455533088,
    0.8732710680888608, 0.8826222295851656, 0.8918550707329416, 0.9009752244612218,
    0.9099879534967185, 0.9188981836495906, 0.9277105334020002, 0.9364293402865751,
    0.9450586844681654, 0.953602409881086, 0.9620641432230406, 0.9704473110642244,
    0.9787551552942246, 0.9869907470990624, 0.995156999635091, 1.003256679544673,
    1.0112924174399958, 1.0192667174654841, 1.0271819660356458, 1.035040439833441,
    1.042844313144149, 1.05059566459093, 1.0582964833306752, 1.0659486747621225,
    1.0735540657924363, 1.0811144097034038, 1.0886313906539797, 1.0961066278520215,
    1.1035416794246398, 1.1109380460135758, 1.118297174119345, 1.1256204592155334,
    1.1329092486525338, 1.1401648443681514, 1.147388505420849, 1.1545814503599277,
    1.1617448594456115, 1.168879876730833, 1.175987612015452, 1.1830691426826867,
    1.190125515426692, 1.1971577478794415, 1.2041668301443815, 1.211153726243699,
    1.2181193754854815, 1.2250646937565308, 1.2319905747461362, 1.2388978911056874,
    1.2457874955486272, 1.2526602218948972, 1.2595168860637143, 1.2663582870182295,
    1.2731852076653563, 1.279998415713818, 1.2867986644932436, 1.2935866937369478,
    1.3003632303308372, 1.3071289890307312, 1.3138846731502205, 1.3206309752210563,
    1.3273685776279258, 1.33409815321936, 1.340820365896404, 1.3475358711805872,
    1.354245316762635, 1.360949343033283, 1.367648583597476, 1.3743436657731662,
    1.3810352110758555, 1.3877238356899761, 1.394410150928141, 1.401094763679251,
    1.407778276846399, 1.4144612897754711, 1.421144398675309, 1.427828197030256,
    1.4345132760058923, 1.441200224848724, 1.447889631280576, 1.4545820818884103,
    1.4612781625102755, 1.4679784586180795, 1.4746835556978555, 1.4813940396281873,
    1.4881104970574475, 1.4948335157804935, 1.5015636851154637, 1.5083015962813116,
    1.5150478427767147, 1.521803020760998, 1.5285677294377125, 1.535342571441514,
    1.5421281532290019, 1.5489250854741734, 1.5557339834691764, 1.562555467531045,
    1.5693901634151237, 1.5762387027359064, 1.5831017233960292, 1.5899798700241907,
    1.5968737944227882, 1.6037841560260946, 1.6107116223698301, 1.6176568695730156,
    1.6246205828330347, 1.6316034569348736, 1.6386061967755476, 1.6456295179047824,
    1.652674147083056, 1.6597408228581825, 1.6668302961616654, 1.673943330926125,
    1.681080704725174, 1.6882432094371953, 1.6954316519345616, 1.7026468547999232,
    1.7098896570713018, 1.717160915017823, 1.724461502948045, 1.7317923140529632,
    1.7391542612859117, 1.7465482782817223, 1.7539753203176716, 1.7614363653189102,
    1.7689324149112686, 1.7764644955245228, 1.7840336595494415, 1.7916409865521625,
    1.7992875845497203, 1.8069745913508208, 1.8147031759662826, 1.8224745400938858,
    1.830289919682757, 1.8381505865828067, 1.8460578502851854, 1.8540130597602018,
    1.8620176053996742, 1.8700729210712668, 1.8781804862929958, 1.8863418285367828,
    1.8945585256707047, 1.9028322085504292, 1.9111645637712533, 1.9195573365931882,
    1.9280123340526658, 1.9365314282756947, 1.9451165600086784, 1.9537697423846467,
    1.962493064944363, 1.9712886979336592, 1.9801588969004766, 1.989106007617438,
    1.9981324713584196, 2.0072408305605287, 2.016433734906204, 2.025713947863854,
    2.035084353729619, 2.0445479652175313, 2.0541079316506523, 2.0637675478117323,
    2.073530263518743, 2.0833996939983046, 2.093379631138792, 2.1034740557148774,
    2.113687150686653, 2.1240233156895236, 2.134487182846017, 2.145083634047889,
    2.1558178198767375, 2.1666951803543086, 2.177721467740293, 2.1889027716263607,
    2.2002455466112765, 2.211756642884161, 2.2234433400925107, 2.235313384929921,
    2.247375032947389, 2.2596370951737876, 2.2721089902283818, 2.284800802724492,
    2.2977233489028634, 2.310888250601372, 2.3243080188711325, 2.337996148796529,
    2.3519672273791445, 2.366237056717291, 2.3808227951720857, 2.3957431197819274,
    2.4110184139011195, 2.4266709849371466, 2.442725318200364, 2.459208374334705,
    2.476149939670523, 2.4935830412710467, 2.5115444416266945, 2.530075232159854,
    2.5492215503247833, 2.569035452681844, 2.5895759867082866, 2.6109105184888235,
    2.6331163936315827, 2.6562830375767432, 2.680514643285745, 2.705933656123062,
    2.7326853590440114, 2.760944005279986, 2.7909211740019275, 2.822877396826443,
    2.8571387308732246, 2.894121053613412, 2.9343668672088876, 2.978603279881843,
    3.0278377917695933, 3.0835261320021434, 3.147889289518001, 3.2245750520478014,
    3.3202447338398255, 3.449278298561431, 3.654152885361009,
)
"""x_1 < x_2 < ... < x_255 = R: right edges of layers 1..255 (layer 1 is the top one)."""
DENSITY = (
    0.9771017012676713, 0.9598790918001063, 0.9451989534422993, 0.9320600759592301,
    0.9199915050393467, 0.9087264400521305, 0.8980959218983431, 0.887984660755833,
    0.8783096558089171, 0.8690086880368567, 0.8600336211963312, 0.8513462584586777,
    0.842915653112204, 0.8347162929868832, 0.826726833946221, 0.818929191603702,
    0.8113078743126559, 0.8038494831709639, 0.7965423304229586, 0.7893761435660241,
    0.7823418326548021, 0.7754313049811867, 0.7686373157984858, 0.7619533468367949,
    0.7553735065070958, 0.7488924472191565, 0.7425052963401507, 0.7362075981268623,
    0.7299952645614758, 0.7238645334686298, 0.7178119326307216, 0.7118342488782481,
    0.7059285013327539, 0.7000919181365113, 0.6943219161261164, 0.6886160830046714,
    0.6829721616449944, 0.6773880362187731, 0.6718617198970818, 0.6663913439087499,
    0.6609751477766629, 0.655611470579697, 0.6502987431108165, 0.6450354808208221,
    0.6398202774530563, 0.6346517992876233, 0.6295287799248364, 0.6244500155470262,
    0.6194143606058341, 0.6144207238889136, 0.6094680649257731, 0.6045553906974674,
    0.5996817526191249, 0.594846243767987, 0.5900479963328256, 0.5852861792633709,
    0.5805599961007905, 0.5758686829723533, 0.5712115067352528, 0.566587763256164,
    0.561996775814524, 0.5574378936187656, 0.552910490425832, 0.5484139632552655,
    0.5439477311900258, 0.5395112342569517, 0.5351039323804572, 0.5307253044036616,
    0.526374847171684, 0.5220520746723215, 0.5177565172297559, 0.5134877207473266,
    0.5092452459957476, 0.5050286679434679, 0.5008375751261485, 0.4966715690524894,
    0.4925302636438682, 0.48841328470545764, 0.48432026942668294, 0.4802508659090465,
    0.47620473271950553, 0.4721815384677298, 0.46818096140569326, 0.464202689048174,
    0.46024641781284253, 0.45631185267871616, 0.4523987068618483, 0.4485067015072028,
    0.4446355653957392, 0.4407850346658038, 0.4369548525479854, 0.43314476911265215,
    0.4293545410294413, 0.42558393133802186, 0.4218327092294958, 0.418100649837848,
    0.41438753404089096, 0.41069314827018805, 0.4070172843294732, 0.40335973922111434,
    0.39972031498019706, 0.39609881851583223, 0.3924950614593154, 0.3889088600187886,
    0.3853400348400771, 0.38178841087339344, 0.37825381724561896, 0.3747360871378909,
    0.3712350576682393, 0.3677505697790323, 0.3642824681290038, 0.3608306009896478,
    0.3573948201457803, 0.3539749808000766, 0.35057094148140594, 0.34718256395679353,
    0.3438097131468506, 0.3404522570445217, 0.33711006663700593, 0.3337830158307183,
    0.3304709813791634, 0.32717384281360135, 0.3238914823763911, 0.32062378495690536,
    0.3173706380299135, 0.3141319315963371, 0.31090755812628634, 0.30769741250429195,
    0.3045013919766498, 0.30131939610080294, 0.29815132669668537, 0.2949970877999617,
    0.29185658561709504, 0.28872972848218276, 0.2856164268155016, 0.28251659308370747,
    0.2794301417616378, 0.2763569892956681, 0.2732970540685769, 0.27025025636587524,
    0.26721651834356114, 0.2641957639972608, 0.2611879191327209, 0.25819291133761896,
    0.2552106699546617, 0.25224112605594196, 0.24928421241852827, 0.24633986350126366,
    0.24340801542275015, 0.24048860594050042, 0.23758157443123798, 0.23468686187232993,
    0.2318044108243386, 0.22893416541468026, 0.22607607132238022, 0.22323007576391746,
    0.22039612748015197, 0.21757417672433116, 0.2147641752511736, 0.21196607630703018,
    0.20917983462112502, 0.20640540639788074, 0.20364274931033488, 0.2008918224946566,
    0.19815258654577514, 0.19542500351413428, 0.19270903690358915, 0.19000465167046499,
    0.18731181422380028, 0.18463049242679927, 0.18196065559952257, 0.17930227452284767,
    0.176655321443735, 0.17401977008183878, 0.17139559563750595, 0.1687827748012115,
    0.16618128576448207, 0.16359110823236572, 0.1610122234375111, 0.1584446141559243,
    0.15588826472447923, 0.15334316106026286, 0.1508092906818457, 0.14828664273257455,
    0.14577520800599406, 0.14327497897351343, 0.1407859498144447, 0.13830811644855073,
    0.13584147657125373, 0.13338602969166913, 0.13094177717364433, 0.12850872227999954,
    0.12608687022018586, 0.12367622820159656, 0.12127680548479022, 0.11888861344290999,
    0.11651166562561081, 0.11414597782783836, 0.111791568163838, 0.10944845714681165,
    0.10711666777468365, 0.1047962256224869, 0.1024871589419351, 0.10018949876880982,
    0.0979032790388623, 0.09562853671300883, 0.09336531191269087, 0.09111364806637363,
    0.0888735920682758, 0.08664519445055796, 0.08442850957035337, 0.08222359581320286,
    0.08003051581466306, 0.07784933670209605, 0.07568013035892708, 0.07352297371398127,
    0.07137794905889037, 0.06924514439700677, 0.0671246538277885, 0.06501657797124286,
    0.06292102443775813, 0.060838108349539864, 0.058767952920933765, 0.0567106901062029,
    0.05466646132488892, 0.05263541827679218, 0.05061772386094777, 0.04861355321586853,
    0.04662309490193037, 0.04464655225129445, 0.04268414491647444, 0.04073611065594093,
    0.03880270740452612, 0.03688421568856729, 0.034980941461716084, 0.03309321945857852,
    0.03122141719192025, 0.029365939758133317, 0.027527235669603085, 0.025705804008548896,
    0.023902203305795882, 0.022117062707308868, 0.02035109623004452, 0.018605121275724647,
    0.01688008315254317, 0.015177088307935327, 0.01349745060173988, 0.01184275785790789,
    0.010214971439701471, 0.008616582769398732, 0.007050875471373227, 0.005522403299250998,
    0.0040379725933630305, 0.002609072746102163, 0.0012602859304985975,
)
"""exp(-x_i^2 / 2) for the edges above."""

TILE = 65536
"""Values per fast-path pass (cache sized; not part of the byte contract: value p of a block always
takes word p of the block's stream, whatever the tiling)."""


@dataclass(frozen=True)
class Tables:
    """The per-layer look-ups of one dtype and scale."""

    dtype: np.dtype
    scale: float
    shift: int
    """``j = (word >> shift) | 1``: 7 for float32 (32-bit words), 10 for float64."""
    width: np.ndarray
    """``fl(scale * width_i) * 2^-P`` in ``dtype`` (P = 24 or 53): value = j * width[i]."""
    limit: np.ndarray
    """``floor(2^P inner_i / width_i)``: fast accept when ``|j| < limit[i]``."""
    unit: np.ndarray
    """``width_i 2^-P`` in float64 (standard-normal units, for the wedge test)."""


def _widths() -> list[float]:
    return [Q, *EDGES]


def _inners() -> list[float]:
    return [R, 0.0, *EDGES[:-1]]


FLOW = np.array([0.0, *DENSITY])
"""``f(x_i)``, the bottom of layer i's wedge (unused for the base)."""
FDIFF = np.array([1.0, 1.0, *DENSITY[:-1]]) - FLOW
"""``f(x_{i-1}) - f(x_i)``, the height of layer i's wedge (``f(x_0) = 1``); 1 for the base, so that
the wedge's ``y`` is ``u`` itself there (the tail's first uniform)."""


@functools.lru_cache(maxsize=64)
def tables(dtype: np.dtype, scale: float) -> Tables:
    """The look-ups for values of ``dtype`` scaled by ``scale`` (exact rational arithmetic for the limits)."""
    bits = 24 if dtype == np.float32 else 53
    widths = _widths()
    limit = [int(Fraction(inner) / Fraction(width) * 2**bits) for inner, width in zip(_inners(), widths, strict=True)]
    scaled = np.array([w * scale for w in widths]) * 2.0**-bits
    return Tables(
        dtype=np.dtype(dtype),
        scale=scale,
        shift=7 if bits == 24 else 10,
        width=scaled.astype(dtype),
        limit=np.array(limit, np.int32 if bits == 24 else np.int64),
        unit=np.array(widths) * 2.0**-bits,
    )


class Bits(Protocol):
    """The streams of one block: ``main`` gives one word per value, ``aux()`` the rejections' words."""

    main: np.random.PCG64

    def aux(self) -> np.random.PCG64: ...


def fill(blocks: Sequence[Bits], out: np.ndarray, scale: float = 1.0, size: int = 0) -> None:
    """Fill ``out`` (contiguous float32 or float64) with N(0, scale^2) values (see the module doc).

    ``out`` holds consecutive blocks of ``size`` values (default: one block, all of ``out``); block
    k, ``out[k size : (k + 1) size]``, draws from ``blocks[k]``: one word of ``main`` per value
    (32-bit halves, low half first, for float32), then ``aux()`` words for its rejected values. The
    rejected values of all the blocks are resolved together (fewer NumPy calls); the bytes are those
    of filling each block on its own.
    """
    size = size or out.size
    t = tables(out.dtype, float(scale))
    native = kernels.native()
    positions, words, owners = [], [], []
    for k, bits in enumerate(blocks):
        block_start = k * size
        for start in range(block_start, min(block_start + size, out.size), TILE):
            chunk = out[start : min(start + TILE, block_start + size)]
            rejected, rejected_words = _fast(bits.main, chunk, t, kernels.usable(native, bits.main, chunk))
            if rejected.size:
                positions.append(rejected + start)
                words.append(rejected_words)
                owners.append(np.full(rejected.size, k, np.intp))
    if positions:
        _resolve(blocks, out, np.concatenate(positions), np.concatenate(words), np.concatenate(owners), t)


def _words(bitgen: np.random.PCG64, n: int, t: Tables) -> np.ndarray:
    """The next ``n`` words of ``bitgen``: int32 halves (low half first) for float32, int64 for float64."""
    if t.shift == 10:
        return bitgen.random_raw(n).view(np.int64)
    raw = bitgen.random_raw((n + 1) // 2)
    if sys.byteorder == "big":  # the low half first on every machine
        raw = (raw << np.uint64(32)) | (raw >> np.uint64(32))
    return raw.view(np.int32)[:n]


def _fast(
    bitgen: np.random.PCG64, out: np.ndarray, t: Tables, native: ModuleType | None
) -> tuple[np.ndarray, np.ndarray]:
    """``out = j * width[i]`` from the next words of ``bitgen`` (one per value); the positions whose point
    is not in its layer's inner part (increasing), and their words. By the compiled kernels ``native``,
    or by NumPy (None): the same bytes."""
    n, name = out.size, t.dtype.name
    word_type = np.int32 if t.shift == 7 else np.int64
    if native is not None:
        positions, words = scratch("zig.positions", n, np.intp), scratch(f"zig.words.{name}", n, word_type)
        kernel = native.ziggurat_f32 if t.shift == 7 else native.ziggurat_f64
        count = kernels.call(bitgen, kernel, out, t.width, t.limit, positions, words)
        assert isinstance(count, int)
        return positions[:count].copy(), words[:count].copy()
    words = _words(bitgen, n, t)
    layer = scratch("zig.layer", n, np.intp)
    np.bitwise_and(words, 255, out=layer, casting="unsafe")
    j = scratch(f"zig.j.{name}", n, word_type)
    np.right_shift(words, t.shift, out=j)
    np.bitwise_or(j, 1, out=j)
    np.copyto(out, j, casting="unsafe")  # exact: |j| < 2^24 (float32), 2^53 (float64)
    width = scratch(f"zig.width.{name}", n, t.dtype.type)
    np.take(t.width, layer, out=width, mode="wrap")
    out *= width
    np.abs(j, out=j)
    limit = scratch(f"zig.limit.{name}", n, word_type)
    np.take(t.limit, layer, out=limit, mode="wrap")
    rejected = scratch("zig.rejected", n, np.bool_)
    np.greater_equal(j, limit, out=rejected)
    positions = np.flatnonzero(rejected)
    return positions, words[positions]


def _decode(words: np.ndarray, t: Tables) -> tuple[np.ndarray, np.ndarray]:
    """Layer (as an index) and odd integer ``j`` of each word (as on the fast path)."""
    layer = (words & 255).astype(np.intp)
    j = words >> t.shift
    j |= 1
    return layer, j


def _put(out: np.ndarray, pos: np.ndarray, j: np.ndarray, layer: np.ndarray, where: np.ndarray, t: Tables) -> None:
    """``out[pos] = fl(j * width[layer])`` where ``where``: the same IEEE multiply as the fast path."""
    at = np.flatnonzero(where)
    values = j.take(at).astype(t.dtype)
    values *= t.width.take(layer.take(at))
    out.put(pos.take(at), values)


def _unit(words: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = ((w >> 11) | 1) 2^-53``: uniform in (0, 1), exact in float64."""
    odd = words >> np.uint64(11)
    odd |= np.uint64(1)
    np.copyto(out, odd, casting="unsafe")
    out *= 2.0**-53
    return out


def _resolve(
    blocks: Sequence[Bits], out: np.ndarray, pos: np.ndarray, words: np.ndarray, owner: np.ndarray, t: Tables
) -> None:
    """Resolve the rejected values at ``pos`` (increasing) from their ``words``, round by round (module doc);
    ``owner`` is each one's block.

    Each formula is evaluated on all pending values at once and kept where it applies, and one
    :func:`log64` call per round serves the wedge test and the tail (fewer, larger NumPy calls).
    """
    while pos.size:
        m = pos.size
        a, b = _aux_words(blocks, owner)
        layer, j = _decode(words, t)
        tail = np.flatnonzero(layer == 0)
        # log argument: y = f(x_i) + u(a) (f(x_{i-1}) - f(x_i)) for a wedge (u(a) itself in the
        # tail, where FLOW = 0 and FDIFF = 1), then u(b) of each tail value
        arg = np.empty(m + tail.size)
        y = _unit(a, arg[:m])
        y *= FDIFF.take(layer)
        y += FLOW.take(layer)
        _unit(b.take(tail), arg[m:])
        logs = log64(arg)
        x = j.astype(np.float64)
        x *= t.unit.take(layer)
        x *= x
        x *= -0.5
        done = logs[:m] < x  # wedge test: ln y < -x^2 / 2
        stay = np.zeros(m, np.bool_)  # pending in the tail: no new candidate
        if tail.size:
            done[tail] = False
            _put(out, pos, j, layer, done, t)
            ok = _tail(out, pos.take(tail), j.take(tail), logs.take(tail), logs[m:], t)
            done[tail] = ok
            stay[tail] = ~ok
        else:
            _put(out, pos, j, layer, done, t)
        retry = ~(done | stay)
        new = b.astype(np.uint32).view(np.int32) if t.shift == 7 else b.view(np.int64)
        layer, j = _decode(new, t)
        fast = np.abs(j) < t.limit.take(layer)
        fast &= retry
        _put(out, pos, j, layer, fast, t)
        np.copyto(words, new, where=retry)
        done |= fast
        keep = np.flatnonzero(~done)
        pos, words, owner = pos.take(keep), words.take(keep), owner.take(keep)


def _aux_words(blocks: Sequence[Bits], owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """This round's words: per block, in block order, ``2c`` words of its second stream for its ``c``
    pending values (the first c are their ``a``, the next c their ``b``)."""
    counts = np.bincount(owner, minlength=len(blocks))
    draws = [blocks[k].aux().random_raw(2 * int(c)) for k, c in enumerate(counts) if c]
    if len(draws) == 1:
        return draws[0][: draws[0].size // 2], draws[0][draws[0].size // 2 :]
    return (np.concatenate([d[: d.size // 2] for d in draws]), np.concatenate([d[d.size // 2 :] for d in draws]))


def _tail(
    out: np.ndarray, pos: np.ndarray, j: np.ndarray, log_a: np.ndarray, log_b: np.ndarray, t: Tables
) -> np.ndarray:
    """Marsaglia's tail method: ``x = -ln u(a) / R``, accepted when ``-2 ln u(b) > x^2``; writes
    ``sign(j) (R + x) scale`` at the accepted positions and returns the acceptance mask."""
    x = log_a / -R
    ok = log_b * -2.0 > x * x
    values = ((x[ok] + R) * t.scale).astype(t.dtype)
    np.negative(values, out=values, where=j[ok] < 0)
    out[pos[ok]] = values
    return ok


def kernel_checks() -> list[kernels.Check]:
    """The self-checks of the ziggurat's compiled fast path (:mod:`netspec.init.kernels`): values,
    rejected positions and words (about 1.5 % of the values), and the generator's state after, by a
    kernel module or by NumPy (None), from a freshly seeded PCG64."""

    def run(dtype: type, n: int) -> Callable[[ModuleType | None], bytes]:
        def one(native: ModuleType | None) -> bytes:
            bitgen, out = np.random.PCG64(20261126), np.empty(n, np.dtype(dtype))
            rejected, words = _fast(bitgen, out, tables(np.dtype(dtype), 0.75), native)
            state = repr(bitgen.state).encode()
            return b"".join((out.tobytes(), rejected.astype(np.int64).tobytes(), words.tobytes(), state))

        return one

    return [("ziggurat float32", run(np.float32, 8193)), ("ziggurat float64", run(np.float64, 4097))]


def derive_tables(layers: int = LAYERS, digits: int = 50) -> tuple[float, float, list[float], list[float]]:
    """``(R, V, EDGES, DENSITY)`` recomputed with mpmath (``pip install mpmath``) at ``digits`` digits.

    ``V(r) = r f(r) + sqrt(pi / 2) erfc(r / sqrt 2)``; from ``x_255 = r`` down,
    ``x_{i-1} = sqrt(-2 ln(V / x_i + f(x_i)))``; ``r`` is found by bisection so that the top layer
    closes, ``x_1 (1 - f(x_1)) = V``.
    """
    import mpmath as mp  # type: ignore[import-untyped]

    mp.mp.dps = digits

    def f(x: mp.mpf) -> mp.mpf:
        return mp.exp(-x * x / 2)

    def walk(r: mp.mpf) -> tuple[mp.mpf | None, mp.mpf, list[mp.mpf]]:
        v = r * f(r) + mp.sqrt(mp.pi / 2) * mp.erfc(r / mp.sqrt(2))
        x = [r]
        for _ in range(layers - 2):
            y = v / x[-1] + f(x[-1])
            if y >= 1:
                return None, v, x
            x.append(mp.sqrt(-2 * mp.log(y)))
        return x[-1] * (1 - f(x[-1])) - v, v, x

    lo, hi = mp.mpf(2), mp.mpf(5)
    for _ in range(int(digits * 3.4)):
        mid = (lo + hi) / 2
        residual = walk(mid)[0]
        if residual is None or residual < 0:
            lo = mid
        else:
            hi = mid
    _, v, x = walk(hi)
    edges = x[::-1]
    return float(hi), float(v), [float(e) for e in edges], [float(f(e)) for e in edges]
