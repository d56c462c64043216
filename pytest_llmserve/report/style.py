"""The report's stylesheet: light, calm, readable on a laptop and in print."""

CSS = """
:root{--ink:#0f172a;--mute:#64748b;--line:#e2e8f0;--bg:#f8fafc;--ok:#059669;--bad:#dc2626;
--warn:#d97706;--card:#fff}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 24px 40px}
header h1{margin:0 0 10px;font-size:26px;letter-spacing:-.02em}
.facts{display:flex;flex-wrap:wrap;gap:6px 22px;margin:0;color:var(--mute)}
.facts div{display:flex;gap:6px}.facts dt{font-weight:600}.facts dd{margin:0;color:var(--ink)}
section{background:var(--card);border:1px solid var(--line);border-radius:12px;
padding:18px 20px;margin-top:18px;box-shadow:0 1px 2px rgba(15,23,42,.04)}
h2{margin:0 0 12px;font-size:17px}.sub{color:var(--mute);margin:-6px 0 10px;font-size:12px}
.tiles{display:grid;grid-template-columns:repeat(5,1fr);gap:12px;background:none;border:0;
padding:0;box-shadow:none}
.tile{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 16px;
border-top:4px solid var(--line)}
.tile b{display:block;font-size:30px;line-height:1.1}.tile span{font-weight:600}
.tile small{display:block;color:var(--mute)}
.tile.ok{border-top-color:var(--ok)}.tile.ok b{color:var(--ok)}
.tile.bad{border-top-color:var(--bad)}.tile.bad b{color:var(--bad)}
.tile.warn{border-top-color:var(--warn)}.tile.warn b{color:var(--warn)}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:6px 8px;text-align:left;
border-bottom:1px solid var(--line);vertical-align:top}th{font-size:12px;color:var(--mute);
font-weight:600;text-transform:none;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td small{color:var(--mute)}td.up{color:#1d4ed8}td.down{color:#b45309}
.why{color:var(--mute);font-size:12px}.checks .why{display:block;max-width:260px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f1f5f9;padding:1px 5px;
border-radius:4px}
.pill{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:600}
.pill.ok{background:#d1fae5;color:#065f46}.pill.bad{background:#fee2e2;color:#991b1b}
.pill.warn{background:#fef3c7;color:#92400e}.pill.mute{background:#f1f5f9;color:#475569}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:12px}
.card{border:1px solid var(--line);border-radius:10px;padding:12px 14px;background:#fbfdff}
.card span{color:var(--mute);font-size:12px;font-weight:600;text-transform:uppercase;
letter-spacing:.04em}.card b{display:block;font-size:17px;margin:4px 0 2px}
.card em{display:block;font-style:normal}.card small{color:var(--mute)}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:14px}
figure{margin:0}figure svg{width:100%;height:auto}figcaption{color:var(--mute);font-size:12px}
svg .plot{fill:#fcfdff;stroke:var(--line)}svg .grid{stroke:#eef2f7}
svg .tick{font-size:11px;fill:var(--mute)}svg .axis{font-size:12px;fill:var(--ink)}
svg .lbl{font-size:12px;fill:var(--ink);font-weight:600}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:7px}
.legend span{margin-right:16px}.scroll{overflow-x:auto}
footer{color:var(--mute);font-size:12px;margin-top:20px;text-align:center}
a{color:#1d4ed8}.nowrap{white-space:nowrap}figure.bars svg{max-width:640px}
details{margin-top:10px}summary{cursor:pointer;color:var(--mute);font-weight:600}
"""
