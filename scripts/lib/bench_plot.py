"""The benchmark's results as one SVG a person can read at a glance (no plotting library).

One row per (scenario, connections): requests/s on the left, p99 latency on the right, a group
of bars per target with one bar per round, each bar labelled with its value.
"""
from html import escape

COLOURS = ["#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2"]


def _panel(x, y, w, h, title, groups, unit, fmt):
    """Bars of `groups` ([(target, [value per round])]) in a w×h box at (x, y)."""
    out = [f'<text x="{x}" y="{y - 8}" font-weight="bold">{escape(title)}</text>',
           f'<line x1="{x}" y1="{y + h}" x2="{x + w}" y2="{y + h}" stroke="#333"/>']
    top = max((v for _, values in groups for v in values), default=1) or 1
    slot = w / max(len(groups), 1)
    for gi, (target, values) in enumerate(groups):
        bar = slot * 0.8 / max(len(values), 1)
        for ri, v in enumerate(values):
            bh = h * v / top
            bx = x + gi * slot + slot * 0.1 + ri * bar
            out.append(f'<rect x="{bx:.1f}" y="{y + h - bh:.1f}" width="{bar * 0.9:.1f}" '
                       f'height="{bh:.1f}" fill="{COLOURS[ri % len(COLOURS)]}">'
                       f'<title>{escape(target)} round {ri + 1}: {fmt(v)} {unit}</title></rect>')
            out.append(f'<text x="{bx + bar * 0.45:.1f}" y="{y + h - bh - 3:.1f}" font-size="9" '
                       f'text-anchor="middle">{fmt(v)}</text>')
        out.append(f'<text x="{x + gi * slot + slot / 2:.1f}" y="{y + h + 14}" '
                   f'text-anchor="middle">{escape(target)}</text>')
    return out


def write_svg(path, results, targets, rounds, caption):
    points = sorted({(r["scenario"], r["conns"]) for r in results},
                    key=lambda k: (not k[0].startswith("GET"), k[1]))
    pw, ph, gap = 520, 160, 70
    width, height = 2 * pw + 3 * 40, len(points) * (ph + gap) + 70
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="100%" height="100%" fill="white"/>',
           f'<text x="40" y="20" font-size="13">{escape(caption)}</text>']
    for ri in range(rounds):
        out.append(f'<rect x="{40 + ri * 80}" y="30" width="10" height="10" '
                   f'fill="{COLOURS[ri % len(COLOURS)]}"/>'
                   f'<text x="{54 + ri * 80}" y="39">round {ri + 1}</text>')
    for i, (scenario, conns) in enumerate(points):
        y = 80 + i * (ph + gap)

        def series(key):
            groups = []
            for t in targets:
                runs = sorted((r for r in results if (r["scenario"], r["conns"], r["target"])
                               == (scenario, conns, t)), key=lambda r: r["round"])
                groups.append((t, [r[key] or 0 for r in runs]))
            return groups
        out += _panel(40, y, pw, ph, f"{scenario}, {conns} connections: requests/s",
                      series("rps"), "req/s", lambda v: f"{v:.0f}")
        out += _panel(80 + pw, y, pw, ph, f"{scenario}, {conns} connections: p99 (ms)",
                      series("p99"), "ms", lambda v: f"{v:.1f}")
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))
