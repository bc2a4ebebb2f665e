"""The family drawn as a genetic pedigree, in SVG, with each person's two inherited HLA haplotypes.

Two parts, kept apart so the geometry can be tested without drawing:

- :func:`layout_pedigree` — a pure function of the pedigree graph (:mod:`haplomatch.pedigree`) returning one
  box (x, y, w, h) per person. Generations come from networkx (:func:`haplomatch.pedigree.generations`),
  then co-parents are put on one row and founders just above their children; relatives with no parent link
  in the file (an aunt given only by her relation) are placed in the row their relation implies. Within a
  row, spouses form one block (adjacent), blocks are ordered by the barycentre of their parents (or
  children), siblings oldest first, and x positions are solved so that every child is centred under its
  parents and every couple over its children as far as the no-overlap constraint allows (a least-squares
  fit under minimum-spacing constraints, solved exactly by pool-adjacent-violators). Boxes of one row are
  at least ``gap`` apart and rows do not overlap, so no two boxes ever intersect.
- :func:`pedigree_svg` — the drawing: squares (male), circles (female), diamonds (unknown sex); the patient
  filled, with an arrow and a thicker outline; untyped and virtual (not in the file) members dashed; under
  each symbol the person's paternal and maternal haplotypes as two bars of one segment per locus, coloured
  by parental haplotype (a, b from the father; c, d from the mother), so a recombinant haplotype is a bar
  whose colour changes at the crossover; conflicting typings outlined in red with a "!".

Every string from the input is escaped (``html.escape``); the SVG is well-formed XML.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from haplomatch.pedigree import Pedigree, generations

#: One colour per parental haplotype (Okabe–Ito palette: distinguishable with colour-vision deficiency and
#: in greyscale print; the letters are written in the bars too).
HAPLOTYPE_COLOURS: dict[str, str] = {"a": "#0072B2", "b": "#56B4E9", "c": "#D55E00", "d": "#E69F00"}
HAPLOTYPE_TEXT: dict[str, str] = {"a": "#ffffff", "b": "#000000", "c": "#ffffff", "d": "#000000"}
UNKNOWN_COLOUR = "#d0d0d0"
CONFLICT_COLOUR = "#c00000"

BOX_W = 112.0
BOX_H = 172.0
GAP = 16.0  # between boxes of a row (and between spouses)
ROW_GAP = 44.0  # between rows: room for the sibship lines
MARGIN = 16.0
LEFT = 34.0  # room for the generation numerals
SYMBOL = 30.0
BAR_TOP = 84.0
BAR_H = 78.0
BAR_W = 16.0


@dataclass(frozen=True)
class Box:
    """One person's area in the drawing: symbol, labels and haplotype bars all lie inside it."""

    id: str
    x: float
    y: float
    w: float
    h: float
    generation: int

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    def intersects(self, other: "Box") -> bool:
        return (self.x < other.x + other.w and other.x < self.x + self.w
                and self.y < other.y + other.h and other.y < self.y + self.h)


@dataclass(frozen=True)
class Layout:
    """Boxes per person id, the drawing size, the couples (left, right) joined by a line, and the sibships
    ((parents...), (children...)) joined by descent lines."""

    boxes: dict[str, Box]
    width: float
    height: float
    rows: tuple[tuple[str, ...], ...]
    couples: tuple[tuple[str, str], ...] = field(default=())
    sibships: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = field(default=())


# -- generations ---------------------------------------------------------------------------------------------
_REL_OFFSET = (  # generation relative to the patient, for people with no parent or child link in the graph
    ("great", -3), ("grandfather", -2), ("grandmother", -2), ("aunt", -1), ("uncle", -1), ("father", -1),
    ("mother", -1), ("grandson", 2), ("granddaughter", 2), ("son", 1), ("daughter", 1), ("child", 1),
    ("nephew", 1), ("niece", 1),
)


def _relation(ped: Pedigree, node: str) -> str:
    p = ped.graph.nodes[node].get("person")
    return (p.relation if p is not None else "").lower()


def _sex(ped: Pedigree, node: str) -> str | None:
    p = ped.graph.nodes[node].get("person")
    if p is not None:
        return p.sex
    return {"father_id": "M", "mother_id": "F"}.get(next((k for _, _, k in ped.graph.out_edges(node, data="kind")), ""))


def _parents(ped: Pedigree, node: str) -> dict[str, str]:
    """kind ('father_id'/'mother_id') → parent."""
    return {k: u for u, _, k in ped.graph.in_edges(node, data="kind")}


def assign_generations(ped: Pedigree) -> dict[str, int]:
    """Row of each person (0 = top). Starts from :func:`haplomatch.pedigree.generations` (longest path from a
    founder), moves founders down to just above their children, puts co-parents on one row, and places
    unlinked relatives by their relation to the patient."""
    g = ped.graph
    gen = dict(generations(ped))
    linked = {n for n in g.nodes if g.degree(n) > 0}
    for n in g.nodes:  # a founder who married in sits just above the children, not at the top
        if g.in_degree(n) == 0 and g.out_degree(n) > 0:
            gen[n] = min(gen[c] for c in g.successors(n)) - 1
    couples = _couples(ped)
    order = list(_topo(ped))
    for _ in range(len(g) + 1):
        changed = False
        for f, m in couples:
            top = max(gen[f], gen[m])
            if gen[f] != top or gen[m] != top:
                gen[f] = gen[m] = top
                changed = True
        for u in order:
            for v in g.successors(u):
                if gen[v] < gen[u] + 1:
                    gen[v] = gen[u] + 1
                    changed = True
        if not changed:
            break
    base = gen[ped.patient]
    for n in g.nodes:
        if n not in linked:
            rel = _relation(ped, n)
            gen[n] = base + next((off for word, off in _REL_OFFSET if word in rel), 0)
    low = min(gen.values())
    return {n: v - low for n, v in gen.items()}


def _topo(ped: Pedigree):
    import networkx as nx

    return nx.topological_sort(ped.graph)


def _couples(ped: Pedigree) -> list[tuple[str, str]]:
    """(father, mother) of every child with both parents in the graph, each pair once, in file order."""
    out: list[tuple[str, str]] = []
    for n in ped.graph.nodes:
        par = _parents(ped, n)
        if "father_id" in par and "mother_id" in par:
            pair = (par["father_id"], par["mother_id"])
            if pair not in out:
                out.append(pair)
    return out


# -- ordering and coordinates ----------------------------------------------------------------------------------
def _pav(targets: list[float], weights: list[float]) -> list[float]:
    """Isotonic (non-decreasing) least-squares fit of ``targets``: pool adjacent violators."""
    blocks: list[list[float]] = []  # [value, weight, count]
    for t, w in zip(targets, weights):
        blocks.append([t, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out: list[float] = []
    for v, _, c in blocks:
        out += [v] * c
    return out


def _place_row(widths: list[float], desired: list[float | None], current: list[float], gap: float) -> list[float]:
    """Centres of the row's blocks, in the given order, closest (least squares) to the desired centres with
    neighbours at least ``gap`` apart. Blocks without a wish keep their current place (with a small weight)."""
    offs = [0.0]
    for i in range(1, len(widths)):
        offs.append(offs[-1] + (widths[i - 1] + widths[i]) / 2 + gap)
    targets, weights = [], []
    for d, c, o in zip(desired, current, offs):
        targets.append((c if d is None else d) - o)
        weights.append(0.05 if d is None else 1.0)
    return [y + o for y, o in zip(_pav(targets, weights), offs)]


def layout_pedigree(ped: Pedigree, *, box_w: float = BOX_W, box_h: float = BOX_H, gap: float = GAP,
                    row_gap: float = ROW_GAP, margin: float = MARGIN, left: float = LEFT,
                    sweeps: int = 12) -> Layout:
    """Boxes for every node of the pedigree (virtual parents included): see the module docstring."""
    g = ped.graph
    nodes = list(g.nodes)
    file_order = {n: i for i, n in enumerate(nodes)}
    gen = assign_generations(ped)
    couples = _couples(ped)
    n_rows = max(gen.values()) + 1

    def age(n: str) -> float:
        p = g.nodes[n].get("person")
        return -(p.age if p is not None and p.age is not None else -1e9)

    sexes = {n: _sex(ped, n) for n in nodes}
    # spouse blocks per row: connected components of the co-parent graph (within a row)
    partners: dict[str, list[str]] = {n: [] for n in nodes}
    for f, m in couples:
        if gen[f] == gen[m]:
            partners[f].append(m)
            partners[m].append(f)
    blocks: list[list[str]] = []
    seen: set[str] = set()
    for n in sorted(nodes, key=lambda x: file_order[x]):
        if n in seen:
            continue
        comp, stack = [], [n]
        while stack:
            x = stack.pop()
            if x in seen:
                continue
            seen.add(x)
            comp.append(x)
            stack += partners[x]
        blocks.append(_chain(comp, partners, file_order, sexes))
    rows: list[list[int]] = [[] for _ in range(n_rows)]
    for bi, b in enumerate(blocks):
        rows[gen[b[0]]].append(bi)

    def bwidth(b: list[str]) -> float:
        return len(b) * box_w + (len(b) - 1) * gap

    pos: dict[str, float] = {}  # centre x of each person

    def place_block(b: list[str], centre: float) -> None:
        x = centre - bwidth(b) / 2 + box_w / 2
        for n in b:
            pos[n] = x
            x += box_w + gap

    for r in rows:  # initial: packed in file order, children by age
        r.sort(key=lambda bi: (min(file_order[n] for n in blocks[bi]),))
        c = 0.0
        for bi in r:
            place_block(blocks[bi], c + bwidth(blocks[bi]) / 2)
            c += bwidth(blocks[bi]) + gap

    sibships = _sibships(ped)
    child_of: dict[str, tuple[str, ...]] = {}
    for parents, kids in sibships:
        for k in kids:
            child_of[k] = parents

    def side_hint(n: str) -> float | None:
        rel = _relation(ped, n)
        if g.degree(n):
            return None
        xs = [pos[m] for m in pos if g.degree(m)] or [0.0]
        if rel.startswith("paternal"):
            return min(xs) - box_w
        if rel.startswith("maternal"):
            return max(xs) + box_w
        return max(xs) + box_w

    def wish(bi: int, up: bool, down: bool) -> float | None:
        """Desired centre of a block: parents' midpoint above its members, children's centre below."""
        b = blocks[bi]
        centre = (pos[b[0]] + pos[b[-1]]) / 2
        vals = []
        for n in b:
            off = pos[n] - centre
            if up and n in child_of:
                ps = [p for p in child_of[n] if p in pos]
                if ps:
                    vals.append(sum(pos[p] for p in ps) / len(ps) - off)
        if down:
            for parents, kids in sibships:
                if not set(parents) <= set(b):
                    continue
                off = sum(pos[p] for p in parents) / len(parents) - centre
                kx = [pos[k] for k in kids]
                vals.append((min(kx) + max(kx)) / 2 - off)
        if not vals:
            hint = side_hint(b[0]) if len(b) == 1 else None
            return hint
        return sum(vals) / len(vals)

    def sweep(order_rows: list[int], up: bool, down: bool, reorder: bool) -> None:
        for ri in order_rows:
            r = rows[ri]
            if not r:
                continue
            desired = {bi: wish(bi, up, down) for bi in r}
            if reorder:
                cur = {bi: (pos[blocks[bi][0]] + pos[blocks[bi][-1]]) / 2 for bi in r}
                r.sort(key=lambda bi: (desired[bi] if desired[bi] is not None else cur[bi],
                                       min(age(n) for n in blocks[bi]),
                                       min(file_order[n] for n in blocks[bi])))
                for bi in r:  # orient each spouse chain: the member whose parents are left goes left
                    _orient(blocks[bi], child_of, pos)
            widths = [bwidth(blocks[bi]) for bi in r]
            current = [(pos[blocks[bi][0]] + pos[blocks[bi][-1]]) / 2 for bi in r]
            centres = _place_row(widths, [desired[bi] for bi in r], current, gap)
            for bi, c in zip(r, centres):
                place_block(blocks[bi], c)

    top_down = list(range(n_rows))
    bottom_up = top_down[::-1]
    for it in range(sweeps):
        reorder = it < sweeps // 2
        sweep(top_down, True, it > 0, reorder)
        sweep(bottom_up, it > 0, True, reorder)
    sweep(top_down, True, True, False)

    # boxes: shift to the margin, rows top-down
    x0 = min(pos.values()) - box_w / 2
    boxes = {}
    for n in nodes:
        x = pos[n] - box_w / 2 - x0 + margin + left
        y = margin + gen[n] * (box_h + row_gap)
        boxes[n] = Box(n, round(x, 2), round(y, 2), box_w, box_h, gen[n])
    width = max(b.x + b.w for b in boxes.values()) + margin
    height = margin + n_rows * box_h + (n_rows - 1) * row_gap + margin
    row_ids = tuple(tuple(n for bi in r for n in blocks[bi]) for r in rows)
    pairs = []
    for b in blocks:
        pairs += [(b[i], b[i + 1]) for i in range(len(b) - 1) if b[i + 1] in partners[b[i]]]
    for f, m in couples:  # co-parents not adjacent (rare): still joined
        if (f, m) not in pairs and (m, f) not in pairs:
            pairs.append((f, m) if boxes[f].x <= boxes[m].x else (m, f))
    return Layout(boxes, round(width, 2), round(height, 2), row_ids, tuple(pairs), tuple(sibships))


def _chain(comp: list[str], partners: dict[str, list[str]], file_order: dict[str, int],
           sex: dict[str, str | None]) -> list[str]:
    """The members of a spouse block in a line where each couple is adjacent when possible."""
    if len(comp) <= 2:  # a couple: the father left, as pedigrees are drawn (flipped later to follow the parents)
        return sorted(comp, key=lambda n: (sex.get(n) != "M", file_order[n]))
    ends = sorted((n for n in comp if len(set(partners[n])) <= 1), key=lambda n: file_order[n])
    start = ends[0] if ends else min(comp, key=lambda n: file_order[n])
    out, seen, stack = [], set(), [start]
    while stack:
        x = stack.pop()
        if x in seen:
            continue
        seen.add(x)
        out.append(x)
        stack += sorted((p for p in partners[x] if p not in seen), key=lambda n: -file_order[n])
    return out


def _orient(block: list[str], child_of: dict[str, tuple[str, ...]], pos: dict[str, float]) -> None:
    if len(block) < 2:
        return

    def above(n: str) -> float | None:
        ps = child_of.get(n)
        return sum(pos[p] for p in ps) / len(ps) if ps else None

    a, b = above(block[0]), above(block[-1])
    if a is not None and b is not None and a > b or (a is None and b is not None and b < pos[block[0]]) or (
            b is None and a is not None and a > pos[block[-1]]):
        block.reverse()


def _sibships(ped: Pedigree) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Children grouped by their parents in the graph: ((father, mother) or (parent,), children)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for n in ped.graph.nodes:
        par = _parents(ped, n)
        key = tuple(par[k] for k in ("father_id", "mother_id") if k in par)
        if key:
            groups.setdefault(key, []).append(n)
    return [(k, tuple(v)) for k, v in groups.items()]


# -- drawing -----------------------------------------------------------------------------------------------------
def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


@dataclass(frozen=True)
class PersonView:
    """What the drawing shows of one person (built by the HTML report from the family and segregation)."""

    id: str
    label: str  # the id as shown (virtual parents: "(father)")
    relation: str
    sex: str | None  # "M", "F" or None
    age: float | None = None
    patient: bool = False
    virtual: bool = False
    typed: bool = True
    paternal: tuple[str | None, ...] | None = None  # haplotype label per locus; None = not segregated
    maternal: tuple[str | None, ...] | None = None
    class_text: str = ""
    conflict_loci: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "paternal"/"maternal" → loci
    recombinant: tuple[str, ...] = ()  # "paternal"/"maternal"
    notes: tuple[str, ...] = ()  # tooltip lines


def _abbrev(relation: str) -> str:
    return relation.replace("paternal ", "pat. ").replace("maternal ", "mat. ")


#: Average advance of a character, in em, of the sans fonts used (DejaVu Sans is among the widest).
EM_WIDTH = 0.6


def _fitted(cx: float, y: float, text: str, width: float, size: float, cls: str, min_size: float = 7.5) -> str:
    """A centred line of text that stays inside ``width``: a smaller font first, then cut with an ellipsis."""
    fs = size
    if len(text) * EM_WIDTH * fs > width:
        fs = max(min_size, width / (len(text) * EM_WIDTH))
    n = int(width / (EM_WIDTH * fs))
    if len(text) > n:
        text = text[: max(n - 1, 1)] + "…"
    return f'<text x="{cx:.1f}" y="{y:.1f}" class="{cls}" font-size="{fs:.1f}">{_e(text)}</text>'


def _symbol(sex: str | None, cx: float, top: float, s: float, style: str) -> str:
    if sex == "M":
        return f'<rect x="{cx - s / 2:.1f}" y="{top:.1f}" width="{s:.1f}" height="{s:.1f}" {style}/>'
    if sex == "F":
        return f'<circle cx="{cx:.1f}" cy="{top + s / 2:.1f}" r="{s / 2:.1f}" {style}/>'
    h = s * 0.6
    cy = top + s / 2
    pts = f"{cx:.1f},{cy - h:.1f} {cx + h:.1f},{cy:.1f} {cx:.1f},{cy + h:.1f} {cx - h:.1f},{cy:.1f}"
    return f'<polygon points="{pts}" {style}/>'


def _bar(x: float, y: float, labels: tuple[str | None, ...] | None, loci: tuple[str, ...], conflicts: tuple[str, ...],
         faded: bool) -> list[str]:
    out = []
    n = max(len(loci), 1)
    seg_h = BAR_H / n
    if labels is None:
        out.append(f'<rect class="bar unknown" x="{x:.1f}" y="{y:.1f}" width="{BAR_W}" height="{BAR_H}" '
                   f'fill="none" stroke="#999" stroke-dasharray="3 2"/>')
        out.append(f'<text x="{x + BAR_W / 2:.1f}" y="{y + BAR_H / 2 + 4:.1f}" class="seg-letter" fill="#777">?</text>')
        return out
    op = ' fill-opacity="0.55"' if faded else ""
    for i, (locus, lab) in enumerate(zip(loci, labels)):
        sy = y + i * seg_h
        colour = HAPLOTYPE_COLOURS.get(lab or "", UNKNOWN_COLOUR)
        out.append(f'<rect class="seg seg-{_e(lab or "unknown")}" x="{x:.1f}" y="{sy:.2f}" width="{BAR_W}" '
                   f'height="{seg_h:.2f}" fill="{colour}"{op}><title>{_e(locus)}: {_e(lab or "?")}</title></rect>')
        if seg_h >= 9:
            fill = HAPLOTYPE_TEXT.get(lab or "", "#000")
            out.append(f'<text x="{x + BAR_W / 2:.1f}" y="{sy + seg_h / 2 + 3.2:.2f}" class="seg-letter" '
                       f'fill="{fill}">{_e(lab or "?")}</text>')
        if i and labels[i - 1] != lab and labels[i - 1] and lab:  # crossover: a tick across the bar
            out.append(f'<line class="crossover" x1="{x - 3:.1f}" y1="{sy:.2f}" x2="{x + BAR_W + 3:.1f}" y2="{sy:.2f}" '
                       f'stroke="#000" stroke-width="1.6"/>')
    out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{BAR_W}" height="{BAR_H}" fill="none" stroke="#333" stroke-width="0.8"/>')
    for locus in conflicts:
        if locus in loci:
            i = loci.index(locus)
            out.append(f'<rect class="conflict" x="{x - 1.5:.1f}" y="{y + i * seg_h + 0.5:.2f}" width="{BAR_W + 3}" '
                       f'height="{seg_h - 1:.2f}" fill="none" stroke="{CONFLICT_COLOUR}" stroke-width="2"/>')
    return out


def _person(box: Box, v: PersonView, loci: tuple[str, ...]) -> str:
    cx, top = box.cx, box.y + 6
    dashed = v.virtual or not v.typed
    stroke_w = 3.2 if v.patient else 1.6
    fill = "#444" if v.patient else "#fff"
    style = (f'fill="{fill}" stroke="#000" stroke-width="{stroke_w}"'
             + (' stroke-dasharray="4 3"' if dashed else ""))
    tip = [f"{v.label} ({v.relation})"] + list(v.notes)
    cls = "person" + (" patient" if v.patient else "") + (" virtual" if v.virtual else "") + (
        " untyped" if not v.typed else "")
    out = [f'<g class="{cls}" data-id="{_e(v.id)}"><title>{_e(chr(10).join(tip))}</title>',
           f'<rect class="person-box" x="{box.x:.2f}" y="{box.y:.2f}" width="{box.w:.2f}" height="{box.h:.2f}" '
           f'rx="6" fill="#ffffff" fill-opacity="0.9" stroke="{"#333" if v.patient else "#e2e2e2"}" '
           f'stroke-width="{1.4 if v.patient else 1}"/>',
           _symbol(v.sex, cx, top, SYMBOL, style)]
    if v.patient:  # proband arrow, lower left of the symbol, pointing at it
        ax, ay = cx - SYMBOL / 2 - 3, top + SYMBOL + 3
        out.append(f'<line x1="{ax - 16:.1f}" y1="{ay + 12:.1f}" x2="{ax - 2:.1f}" y2="{ay + 1.5:.1f}" stroke="#000" '
                   f'stroke-width="2"/><polygon points="{ax:.1f},{ay:.1f} {ax - 8.5:.1f},{ay + 1.5:.1f} '
                   f'{ax - 3.5:.1f},{ay + 7.5:.1f}" fill="#000"/>')
    if v.conflict_loci:
        out.append(f'<text x="{cx - SYMBOL / 2 - 12:.1f}" y="{top + 17:.1f}" class="conflict-mark" '
                   f'fill="{CONFLICT_COLOUR}">!</text>')
    if v.age is not None:
        out.append(f'<text x="{cx + SYMBOL / 2 + 4:.1f}" y="{top + SYMBOL - 2:.1f}" class="page">{v.age:g} y</text>')
    inner = box.w - 6
    out.append(_fitted(cx, box.y + 52, v.label, inner, 12.0, "pid"))
    out.append(_fitted(cx, box.y + 65, _abbrev(v.relation), inner, 10.0, "prel"))
    if v.class_text:
        out.append(_fitted(cx, box.y + 77, v.class_text, inner, 9.5, "pclass"))
    bx = cx - BAR_W - 3
    by = box.y + BAR_TOP
    for i, (side, labels) in enumerate((("paternal", v.paternal), ("maternal", v.maternal))):
        out += _bar(bx + i * (BAR_W + 6), by, labels, loci, v.conflict_loci.get(side, ()), dashed)
    if v.paternal is not None or v.maternal is not None:
        seg_h = BAR_H / max(len(loci), 1)
        for i, locus in enumerate(loci):
            out.append(f'<text x="{bx - 4:.1f}" y="{by + i * seg_h + seg_h / 2 + 3:.2f}" class="locus">{_e(locus)}</text>')
    out.append("</g>")
    return "".join(out)


def pedigree_svg(ped: Pedigree, people: dict[str, PersonView], loci: tuple[str, ...],
                 layout: Layout | None = None, title: str = "Pedigree", scale: tuple[float, float] | None = None) -> str:
    """The SVG of the pedigree (see the module docstring). ``people`` maps every graph node to its view.
    ``scale`` = (smallest, largest) on-screen scale when the page sets the width (an inline style)."""
    lay = layout or layout_pedigree(ped)
    b = lay.boxes
    sym_mid = 6 + SYMBOL / 2
    style = (f' style="min-width:{lay.width * scale[0]:.0f}px;max-width:{lay.width * scale[1]:.0f}px"'
             if scale else "")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="pedigree" viewBox="0 0 {lay.width:.2f} {lay.height:.2f}" '
           f'width="{lay.width:.0f}" height="{lay.height:.0f}"{style} role="img" aria-label="{_e(title)}" '
           f'font-family="DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif">',
           f"<title>{_e(title)}</title>",
           "<style>.pid{font-weight:bold;text-anchor:middle}"
           ".prel{text-anchor:middle;fill:#333}.pclass{text-anchor:middle;fill:#555}"
           ".seg-letter{font-size:9px;font-weight:bold;text-anchor:middle}.locus{font-size:7.5px;text-anchor:end;fill:#555}"
           ".gen{font-size:13px;font-weight:bold;fill:#777;text-anchor:middle}"
           ".page{font-size:9.5px;fill:#333}.conflict-mark{font-size:20px;font-weight:bold}.line{stroke:#000;stroke-width:1.4;fill:none}</style>"]
    # generation numerals
    for r, ids in enumerate(lay.rows):
        if ids:
            y = b[ids[0]].y + sym_mid + 5
            out.append(f'<text x="{MARGIN + 6:.1f}" y="{y:.1f}" class="gen">{_roman(r + 1)}</text>')
    # lines under the boxes: couples, then descent
    lines = []
    for left_id, right_id in lay.couples:
        lb, rb = b[left_id], b[right_id]
        y1, y2 = lb.y + sym_mid, rb.y + sym_mid
        virt = people.get(left_id, None) is not None and (people[left_id].virtual or people[right_id].virtual)
        dash = ' stroke-dasharray="4 3"' if virt else ""
        lines.append(f'<path class="line couple"{dash} d="M{lb.cx + SYMBOL / 2:.1f},{y1:.1f} L{rb.cx - SYMBOL / 2:.1f},{y2:.1f}"/>')
    # sibships that end in the same row get their own level in the gap above it, so that a half-sibship's
    # line is not read as part of the full sibship's
    by_row: dict[float, list[int]] = {}
    for i, (_, kids) in enumerate(lay.sibships):
        by_row.setdefault(min(b[k].y for k in kids), []).append(i)
    level: dict[int, float] = {}
    for top, idx in by_row.items():
        for j, i in enumerate(idx):
            level[i] = top - ROW_GAP / 2 + (j - (len(idx) - 1) / 2) * min(10.0, (ROW_GAP - 12) / max(len(idx) - 1, 1))
    for i, (parents, kids) in enumerate(lay.sibships):
        pb = [b[p] for p in parents]
        kb = [b[k] for k in kids]
        ysib = level[i]
        if len(pb) == 2:
            l, r = sorted(pb, key=lambda x: x.cx)
            x0 = (l.cx + r.cx) / 2
            y0 = (l.y + r.y) / 2 + sym_mid
        else:
            x0, y0 = pb[0].cx, pb[0].y + pb[0].h
        xs = [k.cx for k in kb] + [x0]
        d = f"M{x0:.1f},{y0:.1f} L{x0:.1f},{ysib:.1f} M{min(xs):.1f},{ysib:.1f} L{max(xs):.1f},{ysib:.1f}"
        for k in kb:
            d += f" M{k.cx:.1f},{ysib:.1f} L{k.cx:.1f},{k.y + 6:.1f}"
        lines.append(f'<path class="line descent" d="{d}"/>')
    out += lines
    for n, box in b.items():
        v = people.get(n) or PersonView(n, n, "", None, virtual=bool(ped.graph.nodes[n].get("virtual")))
        out.append(_person(box, v, loci))
    out.append("</svg>")
    return "\n".join(out)


def _roman(n: int) -> str:
    vals = ((10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"))
    out = ""
    for v, s in vals:
        while n >= v:
            out += s
            n -= v
    return out


def legend_svg() -> str:
    """A small key: the four haplotype colours, the symbols, dashed = untyped or not in the file, the patient,
    a recombinant bar and a conflict."""
    items = []
    x = 8.0
    for lab, who in (("a", "father's 1st"), ("b", "father's 2nd"), ("c", "mother's 1st"), ("d", "mother's 2nd")):
        items.append(f'<rect x="{x:.0f}" y="8" width="16" height="16" fill="{HAPLOTYPE_COLOURS[lab]}" stroke="#333" stroke-width="0.8"/>'
                     f'<text x="{x + 8:.0f}" y="20" class="l" text-anchor="middle" fill="{HAPLOTYPE_TEXT[lab]}" font-weight="bold">{lab}</text>'
                     f'<text x="{x + 21:.0f}" y="20" class="l">{_e(who)}</text>')
        x += 100
    y2 = 44
    items.append(f'<rect x="8" y="{y2 - 12}" width="16" height="16" fill="#fff" stroke="#000" stroke-width="1.5"/>'
                 f'<text x="30" y="{y2}" class="l">male</text>'
                 f'<circle cx="88" cy="{y2 - 4}" r="8" fill="#fff" stroke="#000" stroke-width="1.5"/>'
                 f'<text x="100" y="{y2}" class="l">female</text>'
                 f'<polygon points="168,{y2 - 14} 178,{y2 - 4} 168,{y2 + 6} 158,{y2 - 4}" fill="#fff" stroke="#000" stroke-width="1.5"/>'
                 f'<text x="184" y="{y2}" class="l">sex unknown</text>'
                 f'<rect x="282" y="{y2 - 12}" width="16" height="16" fill="#444" stroke="#000" stroke-width="3"/>'
                 f'<line x1="264" y1="{y2 + 8}" x2="278" y2="{y2 - 2}" stroke="#000" stroke-width="2"/>'
                 f'<text x="304" y="{y2}" class="l">patient</text>'
                 f'<rect x="352" y="{y2 - 12}" width="16" height="16" fill="#fff" stroke="#000" stroke-width="1.5" stroke-dasharray="4 3"/>'
                 f'<text x="374" y="{y2}" class="l">untyped / not in the file (reconstructed)</text>')
    y3 = 72
    items.append(f'<rect x="8" y="{y3 - 12}" width="16" height="8" fill="{HAPLOTYPE_COLOURS["a"]}"/>'
                 f'<rect x="8" y="{y3 - 4}" width="16" height="8" fill="{HAPLOTYPE_COLOURS["b"]}"/>'
                 f'<line x1="5" y1="{y3 - 4}" x2="27" y2="{y3 - 4}" stroke="#000" stroke-width="1.6"/>'
                 f'<text x="30" y="{y3}" class="l">recombinant haplotype (colour changes at the crossover)</text>'
                 f'<rect x="352" y="{y3 - 12}" width="16" height="16" fill="{UNKNOWN_COLOUR}" stroke="{CONFLICT_COLOUR}" stroke-width="2"/>'
                 f'<text x="374" y="{y3}" class="l" fill="{CONFLICT_COLOUR}">! typing conflict at this locus</text>')
    y4 = 96
    items.append(f'<rect x="8" y="{y4 - 12}" width="7" height="16" fill="none" stroke="#999" stroke-dasharray="3 2"/>'
                 f'<rect x="17" y="{y4 - 12}" width="7" height="16" fill="none" stroke="#999" stroke-dasharray="3 2"/>'
                 f'<text x="30" y="{y4}" class="l">not segregated (outside the nuclear family): compared with the patient '
                 f'by allele state only</text>')
    y5 = 120
    items.append(f'<text x="8" y="{y5}" class="l">In each person: left bar = haplotype from the father, right bar = from '
                 f'the mother;</text><text x="8" y="{y5 + 15}" class="l">one segment per locus, top to bottom in '
                 f'chromosomal order (the locus names are on the left).</text>')
    return ('<svg xmlns="http://www.w3.org/2000/svg" class="legend" viewBox="0 0 780 142" width="780" height="142" '
            'role="img" aria-label="Key" font-family="DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif">'
            '<style>.l{font-size:11px}</style>' + "".join(items) + "</svg>")
