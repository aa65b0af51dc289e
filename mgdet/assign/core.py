"""What every assignment rule shares: the result type, input validation, the reservation and the exact top-k.

Index convention: ``cls_gt[b, a]`` = GT index (positive), :data:`NEGATIVE` or :data:`IGNORED`;
``reg_gt[b, a]`` = GT index (regression sample) or :data:`NEGATIVE`. All functions are batched over images
(``[B, G, A]`` or ``[B, A]``), pure, and never need gradients.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import Tensor

from mgdet.strategies import StrategySpec, strategy_spec

#: ``cls_gt`` / ``reg_gt`` value of a negative (background) anchor.
NEGATIVE = -1
#: ``cls_gt`` value of an ignored anchor (no classification loss).
IGNORED = -2
#: A candidate's centre must lie inside its GT by more than this many pixels on every side (ATSS and TAL; the
#: value of the ATSS authors' code and of MMDetection's TOOD assigner).
INSIDE_MARGIN = 0.01
#: Tie-break step of :func:`ranking_key`: exact for float32 values and up to 2**23 entries per row.
_TIE_STEP = 2.0**-48


@dataclass
class Assignment:
    """Result of an assignment for a batch: GT indices per anchor for each task (+ an optional soft target)."""

    cls_gt: Tensor  # [B, A] long: >= 0 positive GT index, NEGATIVE, IGNORED
    reg_gt: Tensor  # [B, A] long: >= 0 regression GT index, NEGATIVE
    # [B, A] float: soft classification target of the GT class at positives (0 elsewhere); None = hard 1.0
    cls_target: Tensor | None = None
    # [B, A] float: the quality of each regression sample (0 elsewhere), for an IoU-weighted regression loss
    # (the authors' later rule); None = every sample weighs the same
    reg_weight: Tensor | None = None

    @property
    def cls_pos(self) -> Tensor:
        """[B, A] bool: positive for classification."""
        return self.cls_gt >= 0

    @property
    def reg_pos(self) -> Tensor:
        """[B, A] bool: regression sample."""
        return self.reg_gt >= 0

    def disagreement(self) -> Tensor:
        """Fraction of anchors whose classification and regression roles differ (positive vs not)."""
        return (self.cls_pos != self.reg_pos).float().mean()


def all_negative(num_images: int, num_priors: int, device: torch.device) -> Assignment:
    """Every anchor of every image negative (no GT at all)."""
    empty = torch.full((num_images, num_priors), NEGATIVE, dtype=torch.long, device=device)
    return Assignment(empty, empty.clone())


def validate_inputs(
    strategy: str,
    num_priors: int,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pred_boxes: Tensor | None,
    pred_scores: Tensor | None,
) -> StrategySpec:
    """Check the inputs every rule shares against ``strategy``'s needs; returns its spec (ValueError otherwise)."""
    spec = strategy_spec(strategy)
    if gt_boxes.ndim != 3 or gt_boxes.shape[-1] != 4:
        raise ValueError(f"gt_boxes must be [B, G, 4] xyxy, got shape {tuple(gt_boxes.shape)}")
    if gt_labels.shape != gt_boxes.shape[:2]:
        raise ValueError(
            f"gt_labels must be [B, G] = {tuple(gt_boxes.shape[:2])} to match gt_boxes, got {tuple(gt_labels.shape)}"
        )
    if gt_labels.dtype.is_floating_point:
        raise ValueError("gt_labels must be an integer tensor (class index, -1 for padding)")
    b, a = gt_boxes.shape[0], num_priors
    if spec.needs_boxes:
        if pred_boxes is None:
            raise ValueError(f"strategy {strategy!r} needs pred_boxes [B, A, 4] (decoded regressed boxes)")
        if pred_boxes.shape != (b, a, 4):
            raise ValueError(f"pred_boxes must be [B, A, 4] = {(b, a, 4)}, got {tuple(pred_boxes.shape)}")
    if spec.needs_scores:
        if pred_scores is None:
            raise ValueError(f"strategy {strategy!r} needs pred_scores [B, A, C] (sigmoid class scores)")
        if pred_scores.ndim != 3 or pred_scores.shape[:2] != (b, a):
            raise ValueError(f"pred_scores must be [B, A, C] with B={b}, A={a}, got {tuple(pred_scores.shape)}")
        if gt_labels.numel() and int(gt_labels.max()) >= pred_scores.shape[-1]:
            raise ValueError(
                f"gt_labels has class {int(gt_labels.max())} but pred_scores has {pred_scores.shape[-1]} classes"
            )
    return spec


def prepare_gt(gt_boxes: Tensor, gt_labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Detached float32 GT with padding made harmless: ``(boxes [B, G', 4], labels [B, G'], valid [B, G'])``.

    Padded boxes become empty ``[0, 0, 0, 0]`` (IoU 0 with everything, contain no point); a batch with no
    GT column at all gets one padding column so that every reduction over G stays defined (G' = max(G, 1)).
    """
    gt_boxes = gt_boxes.detach().float()
    if gt_boxes.shape[1] == 0:
        gt_boxes = gt_boxes.new_zeros(gt_boxes.shape[0], 1, 4)
        gt_labels = gt_labels.new_full((gt_labels.shape[0], 1), -1)
    valid = gt_labels >= 0  # [B, G]
    return torch.where(valid[..., None], gt_boxes, 0.0), gt_labels, valid


def centres_inside(centres: Tensor, gt_boxes: Tensor, margin: float) -> Tensor:
    """``[B, G, A]`` bool: point ``centres [A, 2]`` lies inside ``gt_boxes [B, G, 4]`` by more than ``margin``
    pixels on every side (``min(l, t, r, b) > margin``)."""
    x, y = centres[:, 0], centres[:, 1]  # [A]
    g = gt_boxes[..., None]  # [B, G, 4, 1]
    d = x - g[:, :, 0]  # [B, G, A]; in place below: two [B, G, A] temporaries at most
    torch.minimum(d, y - g[:, :, 1], out=d)
    torch.minimum(d, g[:, :, 2] - x, out=d)
    torch.minimum(d, g[:, :, 3] - y, out=d)
    return d > margin


def inside_pairs(centres: Tensor, gt_boxes: Tensor, valid: Tensor, margin: float) -> tuple[Tensor, Tensor, Tensor]:
    """The ``(image, GT, prior)`` index triples ``[P]`` where a prior centre lies inside a valid GT
    (:func:`centres_inside`), in (image, GT, prior) order. The float distances are computed a chunk of GTs at a
    time into one ``[B, G, A]`` bool matrix (1 byte per pair), then listed at once."""
    b, g = valid.shape
    inside = torch.empty(b, g, centres.shape[0], dtype=torch.bool, device=centres.device)
    for part in gt_chunks(b, g, centres.shape[0]):
        torch.logical_and(centres_inside(centres, gt_boxes[:, part], margin), valid[:, part, None], out=inside[:, part])
    return inside.nonzero(as_tuple=True)  # type: ignore[return-value]


def ranking_key(values: Tensor, descending: bool) -> Tensor:
    """float64 keys for ``values [..., N]`` (float32, >= 0) whose order is the values' order with exact ties
    broken by the lower index along the last dimension, first.

    A float32 value differs from its neighbours by at least 2**-24 relative; the index moves the key by at
    most N * 2**-48 relative (< 2**-25 for N < 2**23) and float64 products round at 2**-53: so ``topk`` on the
    keys is exact and deterministic on every device, unlike ``topk`` on the values (tie order unspecified).
    """
    n = values.shape[-1]
    step = torch.arange(n, dtype=torch.float64, device=values.device) * _TIE_STEP  # [N]
    v = values.float().double()
    return v * (1 - step) if descending else v * (1 + step)


def reserve(criterion: Tensor, valid: Tensor, force_best: bool = True) -> tuple[Tensor, Tensor]:
    """Apply the reservation rule to ``criterion [B, G, A]`` (values in [0, 1]) for GTs with ``valid [B, G]``.

    Each valid GT's best anchor is forced to 1.0 for that GT (``force_best``; FCOS points skip this step,
    see :mod:`mgdet.assign.fcos`), then every anchor is kept only for the GT where its value is highest
    (lowest GT index on ties). Rows of padded GTs must be all 0.
    The reserved matrix has at most one non-zero entry per anchor, so it is returned compactly:

    Returns:
        value ``[B, A]``: the anchor's reserved value for its owner (0 when no valid GT reaches it),
        owner ``[B, A]`` long: the GT index owning the anchor (meaningless where value is 0).
    """
    value, owner = criterion.max(dim=1)  # [B, A]; padded GT rows are all 0 (see assign), never above a real one
    if not force_best:
        return value, owner
    return _force_best(value, owner, criterion.argmax(dim=-1), valid)


def _force_best(value: Tensor, owner: Tensor, best: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Force each valid GT's ``best [B, G]`` prior to 1.0 for it (the lowest GT index if several force one)."""
    (b, a), g = value.shape, best.shape[1]
    gt_index = torch.arange(g, device=value.device).expand(b, g)
    forced = torch.full((b, a + 1), g, dtype=torch.long, device=value.device)
    forced.scatter_reduce_(1, torch.where(valid, best, a), torch.where(valid, gt_index, g), "amin")
    forced = forced[:, :a]  # [B, A]; g = not forced
    is_forced = forced < g
    return torch.where(is_forced, 1.0, value), torch.where(is_forced, forced, owner)


#: Elements of one ``[B, g, A]`` chunk of a GT x prior matrix (4 MiB of float32): the rules build their matrices
#: ``g`` GTs at a time, so memory stays bounded on crowded images (hundreds or thousands of objects) and the
#: temporaries stay small; with few GTs (``B x G x A`` below it) there is one chunk, the dense computation.
CHUNK_ELEMENTS = 1 << 20


def gt_chunks(b: int, g: int, a: int) -> list[slice]:
    """The GT ranges of :data:`CHUNK_ELEMENTS`-sized ``[B, g, A]`` chunks of a ``[B, G, A]`` matrix."""
    step = max(1, CHUNK_ELEMENTS // max(b * a, 1))
    return [slice(lo, min(lo + step, g)) for lo in range(0, max(g, 1), step)]


class Reservation:
    """:func:`reserve`, fed one GT chunk of the criterion at a time (``add``), without the ``[B, G, A]`` matrix:
    a running max over the GTs (earlier GTs win ties, as ``max`` over the whole matrix) and each GT's best
    prior (first on ties). ``result()`` gives what :func:`reserve` gives on the whole matrix."""

    def __init__(self, b: int, g: int, a: int, device: torch.device) -> None:
        self.value = torch.zeros(b, a, device=device)
        self.owner = torch.zeros(b, a, dtype=torch.long, device=device)
        self.best = torch.zeros(b, g, dtype=torch.long, device=device)
        self.prior_keys: Tensor | None = None  # [B * A], [B * G] int64 packed keys (windows only, add_block)
        self.gt_keys: Tensor | None = None

    def add(self, chunk: slice, criterion: Tensor) -> None:
        """``criterion [B, g, A]`` of the GTs ``chunk`` (values >= 0, padded rows 0)."""
        v, o = criterion.max(dim=1)  # [B, A]
        better = v > self.value  # strictly: an earlier GT keeps its tie
        self.value = torch.where(better, v, self.value)
        self.owner = torch.where(better, o + chunk.start, self.owner)
        self.best[:, chunk] = criterion.argmax(dim=-1)

    def add_block(self, gt: Tensor, local: Tensor, slot: Tensor, value: Tensor) -> None:
        """Criterion values ``value [..., n]`` (>= 0) of the flat GTs ``gt [n]`` (image * G + GT; ``local [n]`` =
        GT) with the priors at ``slot [..., n]`` (image * A + prior); each pair at most once over all calls, the
        pairs not given are 0: the same result as :meth:`add` on the matrix. One int64 max per prior and per GT
        on packed (value, index) keys (:func:`pack_keys`), started at the dense defaults (value 0, index 0), so
        that entries of value 0 never change anything."""
        (b, a), g = self.value.shape, self.best.shape[1]
        if self.prior_keys is None:
            self.prior_keys = torch.full((b * a,), _INDEX_END, dtype=torch.long, device=value.device)  # (0, GT 0)
            first = torch.arange(b, device=value.device).repeat_interleave(g) * a  # [B * G] slot of prior 0
            self.gt_keys = _INDEX_END - first  # (0, prior 0)
        assert self.gt_keys is not None
        self.prior_keys.scatter_reduce_(0, slot.flatten(), pack_keys(value, local).flatten(), "amax")
        best = pack_keys(value, slot)  # each GT's best slot (the lowest on ties)
        self.gt_keys.scatter_reduce_(0, gt, best.view(-1, gt.shape[0]).amax(0), "amax")

    def result(self, valid: Tensor, force_best: bool = True) -> tuple[Tensor, Tensor]:
        if self.prior_keys is not None and self.gt_keys is not None:  # fed pairs: unpack the keys
            b, a = self.value.shape
            value, owner = unpack_keys(self.prior_keys)
            self.value, self.owner = value.view_as(self.value), owner.view_as(self.owner)
            slot = unpack_keys(self.gt_keys)[1].view_as(self.best)  # image * A + prior
            self.best = slot - torch.arange(b, device=slot.device)[:, None] * a
        if not force_best:
            return self.value, self.owner
        return _force_best(self.value, self.owner, self.best, valid)


#: Index part of a packed (value, index) key: the key's low 32 bits hold ``_INDEX_END - index``.
_INDEX_END = 2**31 - 1


def pack_keys(value: Tensor, index: Tensor) -> Tensor:
    """int64 keys ordered as (``value`` up, ``index`` down): the IEEE bits of ``value [P]`` (float32 >= 0, order
    preserving) in the high 32 bits, ``_INDEX_END - index`` in the low 32. The max of keys = the largest value,
    the lowest index among its ties; 0 = no entry."""
    bits = value.float().contiguous().view(torch.int32)  # order-preserving for values >= 0
    low = (_INDEX_END - index).int()  # broadcast to the values' shape
    if sys.byteorder != "little":
        return (bits.long() << 32) + low.long()
    out = torch.empty((*bits.shape, 2), dtype=torch.int32, device=bits.device)  # two strided copies: several
    out[..., 0] = low  # times faster than shifting or stacking (little-endian: the low word first)
    out[..., 1] = bits
    return out.view(torch.int64)[..., 0]


def unpack_keys(key: Tensor) -> tuple[Tensor, Tensor]:
    """``(value, index)`` of :func:`pack_keys` keys; an empty key (0) gives value 0 and index 0."""
    value = (key >> 32).int().view(torch.float32)
    index = _INDEX_END - (key & 0xFFFFFFFF)
    return value, torch.where(key == 0, 0, index)


def reserved_matrix(value: Tensor, owner: Tensor, num_gt: int) -> Tensor:
    """Expand the compact result of :func:`reserve` back to the ``[B, G, A]`` reserved matrix."""
    gt_index = torch.arange(num_gt, device=owner.device).view(1, -1, 1)
    return torch.where(owner[:, None, :] == gt_index, value[:, None, :], 0.0)


def rank_within_owner(value: Tensor, owner: Tensor, num_gt: int) -> Tensor:
    """Rank of each anchor among the anchors of its owner GT, by decreasing value: [B, A] -> [B, A] long.

    A segmented top-k (:func:`segment_rank` over the flattened ``[B, A]``, one segment per image and GT)
    instead of a ``[B, G, A]`` top-k; ties by anchor index.
    """
    b, a = value.shape
    image = torch.arange(b, device=owner.device)[:, None]  # [B, 1]
    return segment_rank((image * num_gt + owner).flatten(), value.flatten()).view(b, a)


def topk_labels(value: Tensor, owner: Tensor, live: Tensor, k_pos: Tensor, k_ign: Tensor | None) -> Tensor:
    """Per GT, mark its ``k_pos`` best live candidates with the GT index and the next ``k_ign`` as IGNORED.

    value / owner ``[B, A]`` from :func:`reserve`; ``live [B, A]`` bool: the entries that may be selected
    (never a zero entry: ``live`` implies ``value > 0``; non-live entries rank after live ones because the
    caller sets their value to 0); k_pos / k_ign ``[B, G]`` long. Returns ``[B, A]`` long labels, NEGATIVE
    elsewhere.
    """
    rank = rank_within_owner(torch.where(live, value, 0.0), owner, k_pos.shape[1])  # [B, A]
    pos = live & (rank < k_pos.gather(1, owner))
    out = torch.where(pos, owner, NEGATIVE)
    if k_ign is not None:
        ign = live & ~pos & (rank < (k_pos + k_ign).gather(1, owner))
        out = torch.where(ign, IGNORED, out)
    return out


def resolve_pairs(slot: Tensor, gt: Tensor, value: Tensor, num_slots: int, num_gt: int) -> Tensor:
    """Give every prior chosen by several GTs to the GT with the highest ``value`` (lowest GT index on ties).

    The chosen (prior, GT) pairs come as flat lists: ``slot [N]`` = ``b * A + a`` (image and prior),
    ``gt [N]`` GT index, ``value [N]`` (e.g. IoU). Returns ``owner [num_slots]`` long: the winning GT
    index per slot, ``num_gt`` where no pair chose the slot.
    """
    best = torch.full((num_slots,), -torch.inf, device=value.device).scatter_reduce(0, slot, value.float(), "amax")
    wins = value.float() == best[slot]  # [N]
    owner = torch.full((num_slots,), num_gt, dtype=torch.long, device=value.device)
    return owner.scatter_reduce_(0, slot, torch.where(wins, gt, num_gt), "amin")


def segment_rank(segment: Tensor, value: Tensor) -> Tensor:
    """Rank of every entry among the entries of its segment, by decreasing ``value`` (ties: lower position).

    ``segment [N]`` long >= 0 (< 2**31), ``value [N]`` float32 >= 0. One stable sort on an int64 key: the
    segment in the high 32 bits, the reversed IEEE bits of the value (monotone for non-negative floats) in
    the low 32 - exact for every float32 value, however small. Returns ``[N]`` long.
    """
    bits = value.float().contiguous().view(torch.int32).long()  # [N] order-preserving for value >= 0
    key = segment * 2**32 + (2**31 - 1 - bits)
    order = key.argsort(stable=True)  # [N] grouped by segment, best first
    sorted_seg = segment[order]
    n = segment.shape[0]
    first = torch.ones(n, dtype=torch.bool, device=segment.device)
    first[1:] = sorted_seg[1:] != sorted_seg[:-1]  # first entry of each segment in sorted order
    pos = torch.arange(n, device=segment.device)
    start = torch.cummax(torch.where(first, pos, 0), dim=0).values  # [N] start position of the entry's segment
    return torch.empty_like(pos).scatter_(0, order, pos - start)
