#!/usr/bin/env python3
"""Draws docs/images/cte-agent-dashboard-sample.svg: the panels of cte-agent-dashboard.json
plotted from a sample fleet's metrics (a plotted sample, not a Grafana screenshot).

Each sample host gets a textfile in the agent's format (the series of crates/agent/src/metrics.rs);
the script parses them back and computes each panel as the dashboard's PromQL does:
days left = (cte_agent_certificate_not_after_seconds - time()) / 86400, the result whose
cte_agent_last_check_result is 1, and the daily increase of cte_agent_renewals_total and
cte_agent_renewal_failures_total. Standard library only:

    python3 contrib/grafana/plot_sample.py docs/images/cte-agent-dashboard-sample.svg
"""

import sys

NOW = 1_796_083_200  # 2026-12-01T00:00:00Z
DAY = 86_400

# host, days left, last result, manager reachable
FLEET = [
    ("web-01", 312.4, "not_due", 1),
    ("file-01", 88.0, "not_due", 1),
    ("app-01", 364.9, "renewed", 1),
    ("web-02", 44.6, "no_candidate", 1),
    ("app-02", 150.2, "unreachable", 0),
    ("db-01", 11.3, "no_candidate", 1),
    ("db-02", 2.4, "refused_by_manager", 1),
    ("batch-01", -1.2, "expired", 1),
]


def textfile(days_left, result, reachable):
    """The host's metrics as the agent writes them (the series the panels use)."""
    lines = [
        "# TYPE cte_agent_certificate_not_after_seconds gauge",
        f"cte_agent_certificate_not_after_seconds {int(NOW + days_left * DAY)}",
        "# TYPE cte_agent_manager_reachable gauge",
        f"cte_agent_manager_reachable {reachable}",
        "# TYPE cte_agent_last_check_result gauge",
    ]
    for kind in ("not_due", "renewed", "no_candidate", "unreachable", "refused_by_manager", "expired"):
        lines.append(f'cte_agent_last_check_result{{result="{kind}"}} {int(kind == result)}')
    return "\n".join(lines) + "\n"


def parse(text):
    """{(name, labels): value} from the text format (enough for the sample)."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        samples[(name, labels.rstrip("}"))] = float(value)
    return samples


def daily_fleet_counts():
    """Renewals and failed checks per day over 30 days (increase of the counters)."""
    renewals = [(day * 7 + 3) % 5 // 2 for day in range(30)]
    failures = [1 if day % 9 == 4 else 0 for day in range(30)]
    failures[-3:] = [2, 2, 3]
    return renewals, failures


def colour(days):
    return "#e02f44" if days < 3 else "#ff9830" if days < 14 else "#56a64b"


def svg():
    hosts = []
    for name, days, result, reachable in FLEET:
        samples = parse(textfile(days, result, reachable))
        not_after = samples[("cte_agent_certificate_not_after_seconds", "")]
        current = [labels for (metric, labels), value in samples.items()
                   if metric == "cte_agent_last_check_result" and value == 1]
        hosts.append((name, (not_after - NOW) / DAY, current[0].split('"')[1],
                      int(samples[("cte_agent_manager_reachable", "")])))
    hosts.sort(key=lambda host: host[1])
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="960" height="600" '
           'font-family="Helvetica, Arial, sans-serif" font-size="12">',
           '<rect width="960" height="600" fill="#111217"/>',
           '<text x="16" y="24" fill="#ccccdc" font-size="16">CTE agent certificates '
           '(plotted sample from sample metrics, not a Grafana screenshot)</text>']

    def panel(x, y, w, h, title):
        out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="3" fill="#181b1f" stroke="#2c3235"/>')
        out.append(f'<text x="{x + 10}" y="{y + 20}" fill="#ccccdc" font-size="13">{title}</text>')

    # Days left per host (bar gauge).
    panel(10, 40, 460, 300, "Days left per host")
    for row, (name, days, _, _) in enumerate(hosts):
        top = 62 + row * 34
        width = max(2, min(days, 365) / 365 * 300)
        out.append(f'<text x="20" y="{top + 18}" fill="#ccccdc">{name}</text>')
        out.append(f'<rect x="90" y="{top + 4}" width="300" height="20" fill="#22252b"/>')
        out.append(f'<rect x="90" y="{top + 4}" width="{width:.1f}" height="20" fill="{colour(days)}"/>')
        out.append(f'<text x="398" y="{top + 18}" fill="{colour(days)}">{days:.1f} d</text>')

    # Last check result by host (table).
    panel(480, 40, 470, 300, "Last check result by host")
    for column, heading in ((490, "host"), (600, "last result"), (800, "manager reachable")):
        out.append(f'<text x="{column}" y="{82}" fill="#8e8e8e">{heading}</text>')
    for row, (name, days, result, reachable) in enumerate(hosts):
        top = 106 + row * 28
        bad = result in ("expired", "refused_by_manager", "unreachable") or (
            result == "no_candidate" and days < 14)
        out.append(f'<text x="490" y="{top}" fill="#ccccdc">{name}</text>')
        out.append(f'<text x="600" y="{top}" fill="{"#e02f44" if bad else "#ccccdc"}">{result}</text>')
        out.append(f'<text x="800" y="{top}" fill="{"#56a64b" if reachable else "#e02f44"}">{reachable}</text>')

    # Fleet renewals over time (bars per day).
    renewals, failures = daily_fleet_counts()
    panel(10, 350, 640, 240, "Fleet renewals over time (per day, last 30 days)")
    base, scale = 560, 40
    for grid in range(0, 5):
        y = base - grid * scale
        out.append(f'<line x1="40" y1="{y}" x2="640" y2="{y}" stroke="#2c3235"/>')
        out.append(f'<text x="24" y="{y + 4}" fill="#8e8e8e">{grid}</text>')
    for day in range(30):
        x = 46 + day * 19.6
        out.append(f'<rect x="{x:.1f}" y="{base - renewals[day] * scale}" width="8" '
                   f'height="{renewals[day] * scale}" fill="#73bf69"/>')
        out.append(f'<rect x="{x + 8:.1f}" y="{base - failures[day] * scale}" width="8" '
                   f'height="{failures[day] * scale}" fill="#f2495c"/>')
    out.append('<rect x="60" y="574" width="10" height="10" fill="#73bf69"/>'
               '<text x="76" y="583" fill="#ccccdc">renewals per day</text>'
               '<rect x="200" y="574" width="10" height="10" fill="#f2495c"/>'
               '<text x="216" y="583" fill="#ccccdc">failed checks per day</text>')

    # Hosts expiring within 14 days (stat).
    expiring = sum(1 for host in hosts if host[1] < 14)
    panel(660, 350, 290, 240, "Hosts expiring within 14 days")
    out.append(f'<rect x="670" y="380" width="270" height="200" fill="{"#e02f44" if expiring else "#56a64b"}"/>')
    out.append(f'<text x="805" y="505" fill="#ffffff" font-size="72" text-anchor="middle">{expiring}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else "docs/images/cte-agent-dashboard-sample.svg"
    with open(target, "w", encoding="utf-8") as file:
        file.write(svg())
