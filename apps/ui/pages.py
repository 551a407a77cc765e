"""Server-rendered HTML of the Models and Drift pages (shown in the Airflow UI in an iframe).

Links are relative (the app is mounted under a prefix, behind whatever base URL Airflow has).
Every value that comes from data is escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from html import escape
from typing import Any

from apps.ui.charts import heat_map, line_chart
from core.catalogue import CATALOGUE
from lifecycle.history import ProductionMove

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:16px 20px;
 color:#1a202c;background:#fff;font-size:14px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:26px 0 8px;border-bottom:1px solid #e2e8f0;
 padding-bottom:4px}
.sub{color:#4a5568;margin:0 0 12px}
nav.top{display:flex;gap:14px;align-items:center;margin-bottom:14px}
nav.top a{color:#2b6cb0;text-decoration:none;font-weight:600}nav.top a.on{color:#1a202c;
 border-bottom:2px solid #2b6cb0}
nav.top form{margin-left:auto;font-size:13px}
table{border-collapse:collapse;width:100%;margin:6px 0 10px}
th,td{border-bottom:1px solid #e2e8f0;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f7fafc;font-weight:600;font-size:13px;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.prod{background:#f0fff4}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;font-weight:600;
 white-space:nowrap}
.ok{background:#c6f6d5;color:#22543d}.bad{background:#fed7d7;color:#822727}
.info{background:#bee3f8;color:#2a4365}.muted{color:#718096}.warn{background:#feebc8;color:#7b341e}
.small{font-size:11px;white-space:nowrap}
.wide{overflow-x:auto}
.runid{white-space:nowrap}
code{font-size:12px;background:#f7fafc;padding:0 3px;border-radius:3px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:8px 0}
.card{border:1px solid #e2e8f0;border-radius:6px;padding:8px 12px;min-width:150px}
.card b{display:block;font-size:18px}
.error{border:1px solid #feb2b2;background:#fff5f5;padding:10px;border-radius:6px}
details summary{cursor:pointer;color:#2b6cb0}
.charts{display:flex;flex-wrap:wrap;gap:10px}
"""


def layout(title: str, active: str, body: str, provider: str, subtitle: str = "", base: str = "") -> str:
    """The page frame: navigation between the pages and the provider selector.

    ``base`` leads from the page's folder back to the app's root (relative links only).
    """
    options = "".join(
        f'<option value="{p.name}" title="{escape(p.label)}"{" selected" if p.name == provider else ""}>'
        f"{p.name}</option>"
        for p in CATALOGUE
    )
    links = "".join(
        f'<a href="{base}{href}?provider={provider}" class="{"on" if name == active else ""}">{label}</a>'
        for name, href, label in (("models", "models", "Models"), ("drift", "drift", "Drift"))
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<nav class="top">{links}<form method="get" action="{base}{active}">provider '
        f'<select name="provider" onchange="this.form.submit()">{options}</select>'
        '<noscript><button type="submit">show</button></noscript></form></nav>'
        f"<h1>{escape(title)}</h1>"
        + (f'<p class="sub">{subtitle}</p>' if subtitle else "")
        + body
        + "</body></html>"
    )


def error_page(title: str, active: str, provider: str, message: str) -> str:
    """A page that says what went wrong reading the provider, and what to do."""
    body = (
        f'<div class="error"><b>Cannot read the {escape(provider)} provider.</b><br>{escape(message)}</div>'
    )
    return layout(title, active, body, provider)


def source_note(source: dict[str, str | None] | None, empty: bool) -> str:
    """Which settings file the pages read; on an empty page, how to see the demo's data.

    ``source``: ``config`` (the settings file read) and ``demo_config`` (the demo's settings
    when ``make demo`` wrote them and they are not the ones read).
    """
    if not source:
        return ""
    note = f'<p class="muted" id="settings-note">Settings: <code>{escape(source["config"] or "")}</code>'
    demo_config = source.get("demo_config")
    if empty:
        note += " (<code>MLOPS_CONFIG</code>, or astro.toml): nothing has run with them yet."
        if demo_config:
            note += (
                f" <b>Looking for <code>make demo</code>'s runs?</b> It wrote them with its own settings "
                f"(<code>{escape(demo_config)}</code>): stop Airflow (Ctrl-C) and start it "
                "with <code>make airflow-demo</code> to see them here."
            )
    return note + "</p>"


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return '<span class="muted">n/a</span>'
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def _short_basis(basis: str) -> str:
    return "no cloud charge" if basis.startswith("local") else basis.split(" for ")[0]


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:.4f}"


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{escape(text)}</span>'


_RUN_ID = re.compile(r"^(\w+__\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(\+00:00)?(.*)$")


def _run_id(value: str) -> str:
    """A run id on one line, without its microseconds and UTC offset (in full on hover).

    ``manual__2026-11-30T08:55:40.956246+00:00`` wrapped over three lines and pushed the cost
    column out of Airflow's frame; it shows as ``manual__2026-11-30T08:55:40``.
    """
    match = _RUN_ID.match(value or "")
    short = match[1] + match[4] if match else (value or "")
    return f'<span class="runid" title="{escape(value or "")}">{escape(short)}</span>'


def _gate_badge(gate: dict[str, Any]) -> str:
    """Passed (and promoted), passed but kept out of production (a backfill), or rejected."""
    if not gate["passed"]:
        return _badge("rejected", "bad")
    return _badge("passed", "ok") if gate.get("promote", True) else _badge("passed, kept", "warn")


def _decision_badge(gate: dict[str, Any]) -> str:
    if not gate["passed"]:
        return _badge("reject", "bad")
    return _badge("promote", "ok") if gate.get("promote", True) else _badge("keep", "warn")


def _when(iso: str) -> str:
    return escape((iso or "")[:19].replace("T", " ")) + (" UTC" if iso else "")


# ----------------------------------------------------------------------------------------------
# Models


def models_page(
    view: dict[str, Any], provider: str, gate_metric: str, source: dict[str, str | None] | None = None
) -> str:
    """Render the Models page (``source``: see :func:`source_note`)."""
    versions = view["versions"]
    production = view["production"]
    deployment = view["deployment"]
    if isinstance(deployment, dict):
        served = (
            _badge("endpoint unreachable", "bad")
            + f' <span class="muted">{escape(deployment["error"])}</span>'
        )
    elif deployment is None:
        served = _badge("nothing deployed", "warn")
    else:
        served = (
            f"v{escape(deployment.version)} at <code>{escape(deployment.url)}</code> "
            f"since {_when(deployment.deployed_at)}"
        )
    cards = (
        '<div class="cards">'
        '<div class="card">production<b id="production-version">'
        f"{'v' + escape(production) if production else 'none'}</b></div>"
        f'<div class="card">registered versions<b>{len(versions)}</b></div>'
        f'<div class="card">alias moves<b>{len(view["history"])}</b></div>'
        f'<div class="card">online endpoint<br>{served}</div>'
        "</div>"
    )
    body = [cards, "<h2>Registered versions</h2>"]
    if not versions:
        body.append(
            '<p class="muted">No version is registered yet: trigger <code>retrain_pipeline</code> (or '
            "<code>train_model</code>, <code>evaluate_model</code> and <code>register_model</code>) "
            "for a week whose data was ingested and validated.</p>"
        )
    else:
        body.append(_versions_table(versions, gate_metric))
    body.append("<h2>Trained challengers not registered yet</h2>")
    body.append(_challengers_table(view["challengers"], gate_metric))
    body.append("<h2>Production alias history</h2>")
    body.append(_history_table(view["history"]))
    body.append("<h2>Gate decisions</h2>")
    body.append(_gate_table(view["evaluations"]))
    empty = not versions and not view["evaluations"]
    # on an empty page the note is what the reader needs first: under the cards; else at the end
    body.insert(1 if empty else len(body), source_note(source, empty=empty))
    subtitle = (
        f"Model <code>{escape(view['model_name'])}</code> on the <b>{escape(provider)}</b> provider: "
        "every registered version, its lineage and cost, which one serves production, and why."
    )
    return layout("Models", "models", "".join(body), provider, subtitle)


def _versions_table(versions: Sequence[dict[str, Any]], gate_metric: str) -> str:
    head = (
        # what decides first (metrics, gate, cost), the details after: in Airflow's frame the
        # table scrolls sideways, and the cost column used to be the one cut off
        f"<tr><th>version</th><th>trained for</th><th>why / by</th><th>validation {escape(gate_metric)}</th>"
        f"<th>holdout {escape(gate_metric)}</th><th>gate</th><th>cost estimate</th>"
        "<th>other validation metrics</th><th>rows</th><th>training window<br>(data versions)</th>"
        "<th>hardware</th></tr>"
    )
    rows = []
    for v in versions:
        m = v["metrics"]
        status = _badge("production", "ok") if v["is_production"] else _badge("registered", "info")
        data = "<br>".join(  # 8 hex digits tell versions apart; all 16 on hover
            f'{escape(w)} <code title="{escape(str(v["data_versions"].get(w, "?")))}">'
            f"{escape(str(v['data_versions'].get(w, '?'))[:8])}</code>"
            for w in v["train_weeks"]
        )
        hardware = ", ".join(f"{escape(k)}={escape(str(val))}" for k, val in sorted(v["hardware"].items()))
        cost = v["cost"]
        cost_text = _usd(cost["usd"])
        gate = "<br>".join(_gate_badge(g) for g in v["gate"]) or '<span class="muted">not evaluated</span>'
        rows.append(
            f'<tr class="{"prod" if v["is_production"] else ""}" id="version-{escape(v["version"])}">'
            f"<td><b>v{escape(v['version'])}</b> {status}<br>"
            f'<span class="muted small">{_when(v["created_at"])}</span></td>'
            f"<td>{escape(v['week'])}</td>"
            f'<td>{escape(v["reason"])}<br><span class="muted">{_run_id(v["trained_by"])}</span></td>'
            f'<td class="num">{_fmt(m.get(f"validation_{gate_metric}"))}</td>'
            f'<td class="num">{_fmt(m.get(f"holdout_{gate_metric}"))}</td>'
            f"<td>{gate}</td>"
            f'<td class="num" title="{escape(cost["basis"])}">{cost_text}'
            f'<br><span class="muted small">{escape(_short_basis(cost["basis"]))}</span></td>'
            f'<td class="small">{_other_metrics(m, gate_metric)}</td>'
            f'<td class="num">{_fmt(m.get("n_train"), 0)} train<br>{_fmt(m.get("n_validation"), 0)} val</td>'
            f'<td class="small" title="code {escape(v["code_version"])}">{data or "-"}</td>'
            f"<td>{hardware or '-'}</td></tr>"
        )
    return f'<div class="wide"><table id="versions">{head}{"".join(rows)}</table></div>'


def _other_metrics(metrics: dict[str, Any], gate_metric: str) -> str:
    """The version's other validation metrics, e.g. ``log_loss 0.412``."""
    parts = [
        f"{escape(name.removeprefix('validation_'))} {_fmt(value, 3)}"
        for name, value in sorted(metrics.items())
        if name.startswith("validation_") and name != f"validation_{gate_metric}"
    ]
    return "<br>".join(parts) or "-"


def _challengers_table(challengers: Sequence[dict[str, Any]], gate_metric: str) -> str:
    if not challengers:
        return '<p class="muted">None: every trained challenger is registered.</p>'
    rows = []
    for c in challengers:
        m, cost = c["metrics"], c["cost"]
        gate = (
            "<br>".join(_gate_badge(g) for g in c["gate"])
            or '<span class="muted">not evaluated: trigger evaluate_model, then register_model</span>'
        )
        rows.append(
            f'<tr id="challenger-{escape(c["training_job"])}"><td>{escape(c["week"])}</td>'
            f"<td><code>{escape(c['training_job'])}</code></td><td>{escape(c['reason'])}</td>"
            f'<td class="num">{_fmt(m.get(f"validation_{gate_metric}"))}</td>'
            f"<td>{escape(', '.join(c['train_weeks']))}</td>"
            f'<td class="num">{_usd(cost["usd"])}</td><td>{gate}</td></tr>'
        )
    return (
        '<table id="challengers"><tr><th>week</th><th>training job</th><th>why</th>'
        f"<th>validation {escape(gate_metric)}</th><th>trained on</th><th>cost estimate</th>"
        "<th>gate</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _history_table(history: Sequence[dict[str, Any]]) -> str:
    if not history:
        return '<p class="muted">Production has never been set.</p>'
    kinds = {
        ProductionMove.PROMOTED: "ok",
        ProductionMove.DRIFT_PROMOTED: "warn",
        ProductionMove.MANUAL_ROLLBACK: "info",
    }
    rows = "".join(
        f"<tr><td>{_when(h['changed_at'])}</td>"
        f"<td>v{escape(h['previous_version'] or '-')} &rarr; <b>v{escape(h['version'])}</b></td>"
        f"<td>{_badge(h['kind'], kinds.get(h['code'], 'bad'))}</td>"
        f"<td><code>{_run_id(h['actor'])}</code></td><td>{escape(h['reason'])}</td></tr>"
        for h in history
    )
    return (
        '<table id="history"><tr><th>when</th><th>move</th><th>kind</th><th>by (run or user)</th>'
        f"<th>why</th></tr>{rows}</table>"
        '<p class="muted">Roll back: trigger the <code>rollback_model</code> DAG (empty version = the '
        "version before the last move).</p>"
    )


def _gate_table(evaluations: Sequence[dict[str, Any]]) -> str:
    if not evaluations:
        return '<p class="muted">No challenger has been evaluated yet.</p>'
    rows = []
    for e in evaluations:
        champion = f"v{escape(e['champion_version'])}" if e.get("champion_version") else "none"
        challenger = f"v{escape(e['challenger_version'])}" if e.get("challenger_version") else "unregistered"
        delta = None
        if e.get("champion_score") is not None and e.get("challenger_score") is not None:
            delta = e["challenger_score"] - e["champion_score"]
        rows.append(
            f"<tr><td>{escape(e['week'])}</td>"
            f"<td>{_decision_badge(e)}</td>"
            f"<td>{escape(e['metric'])}</td>"
            f'<td class="num">{challenger}: {_fmt(e.get("challenger_score"))}</td>'
            f'<td class="num">{champion}: {_fmt(e.get("champion_score"))}</td>'
            f'<td class="num">{_fmt(e.get("baseline_score"))}</td>'
            f'<td class="num">{"n/a" if delta is None else f"{delta:+.4f}"}</td>'
            f'<td class="num">{_fmt(e.get("margin"), 3)}</td>'
            f'<td class="num">{_fmt(e.get("n_holdout"), 0)}</td>'
            f"<td>{escape(e.get('decision') or '')}<br>"
            f'<span class="muted">{escape(e["job_name"])}</span></td></tr>'
        )
    return (
        '<table id="gate"><tr><th>week</th><th>decision</th><th>metric</th><th>challenger</th>'
        "<th>champion</th><th>baseline</th><th>difference</th><th>margin</th><th>holdout rows</th>"
        "<th>details</th></tr>"
        f"{''.join(rows)}</table>"
    )


# ----------------------------------------------------------------------------------------------
# Drift


def drift_page(
    view: dict[str, Any],
    provider: str,
    thresholds: dict[str, float],
    source: dict[str, str | None] | None = None,
) -> str:
    """Render the Drift page (``source``: see :func:`source_note`)."""
    weeks, summaries = view["weeks"], view["summaries"]
    if not weeks:
        empty = (
            '<p class="muted">No week has been monitored yet: <code>monitor_drift</code> (the last stage '
            "of <code>retrain_pipeline</code>) writes one row per week.</p>"
        ) + source_note(source, empty=True)
        return layout("Drift", "drift", empty, provider)
    retrain_weeks = [s["week"] for s in summaries if s.get("drift_detected")]
    psi_threshold = thresholds["feature_psi_threshold"]
    metric = str(next((s["metric"] for s in reversed(summaries) if s.get("metric")), "metric"))
    body = [
        '<div class="cards">'
        f'<div class="card">weeks monitored<b>{len(weeks)}</b></div>'
        f'<div class="card">weeks with drift<b id="drift-weeks">{len(retrain_weeks)}</b></div>'
        f'<div class="card">features watched<b>{len(view["features"])}</b></div>'
        f'<div class="card">last week<b>{escape(weeks[-1])}</b></div></div>',
        "<h2>Feature drift: PSI by feature and week</h2>",
        '<p class="muted">Each week is compared with the weeks before it (the training window, from the '
        f"last drift on). A feature drifts when its PSI exceeds {psi_threshold:g}; a week drifts when more "
        f"than {thresholds['drifted_share_threshold']:g} of its features drift.</p>",
        '<div id="heatmap">'
        + heat_map(view["features"], weeks, view["psi"], view["drifted"], psi_threshold, retrain_weeks)
        + "</div>",
        '<h2>Drift over the weeks</h2><div class="charts">',
        line_chart(
            weeks,
            {f: [view["psi"].get(f, {}).get(w) for w in weeks] for f in _top_features(view, 8)},
            title="PSI per feature (the 8 that moved most; all in the heat map)",
            y_label="PSI",
            thresholds={"drift threshold": psi_threshold},
            marked_weeks=retrain_weeks,
        ),
        line_chart(
            weeks,
            {
                "share of features drifted": [s.get("share_drifted") for s in summaries],
                "prediction PSI": [s.get("prediction_psi") for s in summaries],
            },
            title="Data and prediction drift",
            y_label="share / PSI",
            thresholds={
                "share threshold": thresholds["drifted_share_threshold"],
                "prediction PSI threshold": thresholds["prediction_psi_threshold"],
            },
            marked_weeks=retrain_weeks,
        ),
        line_chart(
            weeks,
            {
                f"live {metric}": [s.get("live_metric") for s in summaries],
                f"model's validation {metric}": [s.get("reference_metric") for s in summaries],
            },
            title="Live metric once labels arrive (concept drift)",
            y_label=metric,
            marked_weeks=retrain_weeks,
        ),
        "</div>",
        _serving_charts(weeks, view.get("ops") or {}, thresholds, retrain_weeks),
        "<h2>Weeks</h2>",
        _weeks_table(summaries, provider, metric),
        source_note(source, empty=False),
    ]
    subtitle = (
        f"Data, prediction and concept drift of every monitored week on the <b>{escape(provider)}</b> "
        "provider. Red bands and &#9650; mark the weeks whose drift triggered a retrain."
    )
    return layout("Drift", "drift", "".join(body), provider, subtitle)


def _serving_charts(
    weeks: Sequence[str], ops: dict[str, dict[str, Any]], thresholds: dict[str, float], marked: Sequence[str]
) -> str:
    """Latency and error rate of each monitored week's serving (ops_summary), beside its drift."""
    if not any((ops.get(w) or {}).get("requests") for w in weeks):
        return (
            '<h2>Serving</h2><p class="muted" id="serving-none">No prediction request was recorded in '
            "these weeks (ops_summary): nothing to chart.</p>"
        )
    unhealthy = [w for w in weeks if w in ops and ops[w].get("healthy") is False]
    note = (
        f'<p id="serving-unhealthy">Serving unhealthy in {", ".join(escape(w) for w in unhealthy)} '
        "(an alert, not a retrain).</p>"
        if unhealthy
        else ""
    )

    def series(key: str, scale: float = 1.0) -> list[float | None]:
        values = [(ops.get(w) or {}).get(key) for w in weeks]
        return [None if v is None else float(v) * scale for v in values]

    return "".join([
        "<h2>Serving: latency and errors by week</h2>",
        note,
        '<div class="charts" id="serving">',
        line_chart(
            weeks, {"p50": series("latency_p50_ms"), "p95": series("latency_p95_ms"),
                    "p99": series("latency_p99_ms")},
            title="Endpoint latency (ms)", y_label="ms",
            thresholds={"p99 limit": thresholds.get("max_p99_ms", 500.0)}, marked_weeks=marked,
        ),
        line_chart(
            weeks, {"5xx": series("error_rate_5xx", 100), "4xx": series("error_rate_4xx", 100)},
            title="Error rate (% of requests)", y_label="%",
            thresholds={"5xx limit": 100 * thresholds.get("max_error_rate", 0.01)}, marked_weeks=marked,
        ),
        "</div>",
    ])  # fmt: skip


def _top_features(view: dict[str, Any], n: int) -> list[str]:
    """The features with the highest PSI in any week, drifted ones first."""

    def peak(feature: str) -> tuple[bool, float]:
        values = [v for v in view["psi"].get(feature, {}).values() if v is not None]
        return (feature in view["drifted"], max(values, default=0.0))

    return sorted(view["features"], key=peak, reverse=True)[:n]


def _weeks_table(summaries: Sequence[dict[str, Any]], provider: str, metric: str) -> str:
    rows = []
    for s in reversed(summaries):
        if s.get("drift_detected"):
            kinds = [k for k in ("data", "prediction", "concept") if s.get(f"{k}_drifted")]
            verdict = _badge("DRIFT: " + " + ".join(kinds), "bad")
        elif not s["reference_weeks"]:
            verdict = _badge("no reference yet", "info")
        else:
            verdict = _badge("no drift", "ok")
        if s["retrain_jobs"]:
            retrain = "retrained: " + ", ".join(f"<code>{escape(j)}</code>" for j in s["retrain_jobs"])
        elif s.get("drift_detected") and s.get("retrain") is False:
            retrain = _badge("no retrain: cooldown", "info")
        elif s.get("drift_detected"):
            retrain = _badge("retrain triggered", "warn")
        else:
            retrain = '<span class="muted">-</span>'
        if s.get("decision"):  # why each cause was or was not judged, found and retrained
            verdict += f'<div class="muted decision">{escape(str(s["decision"]))}</div>'
        week = escape(s["week"])
        report = (
            f'<a href="drift/report/{week}?provider={provider}">report</a>'
            if s["has_report"]
            else '<span class="muted">none</span>'
        )
        rows.append(
            f'<tr id="week-{week}"><td><b>{week}</b></td><td>{verdict}</td>'
            f'<td class="num">{s.get("n_drifted") or 0} / {s.get("n_features") or 0}</td>'
            f'<td class="num">{_fmt(s.get("prediction_psi"), 3)}</td>'
            f'<td class="num">{_fmt(s.get("live_metric"), 3)} / '
            f"{_fmt(s.get('reference_metric'), 3)}</td>"
            f"<td>{'v' + escape(s['model_version']) if s.get('model_version') else '-'}</td>"
            f"<td>{escape(', '.join(s['reference_weeks'])) or '-'}</td>"
            f"<td>{retrain}</td><td>{report}</td></tr>"
        )
    return (
        '<table id="weeks"><tr><th>week</th><th>verdict</th><th>features drifted</th><th>prediction PSI</th>'
        f"<th>live / validation {escape(metric)}</th><th>scored by</th><th>compared with</th><th>retrain</th>"
        f"<th>HTML report</th></tr>{''.join(rows)}</table>"
    )


def report_frame(week: str, weeks: Sequence[str], provider: str) -> str:
    """A page around a week's HTML drift report, with links back and to the neighbouring weeks."""
    i = weeks.index(week) if week in weeks else -1
    prev_link = (
        f'<a href="{escape(weeks[i - 1])}?provider={provider}">&larr; {escape(weeks[i - 1])}</a>'
        if i > 0
        else ""
    )
    next_link = (
        f'<a href="{escape(weeks[i + 1])}?provider={provider}">{escape(weeks[i + 1])} &rarr;</a>'
        if 0 <= i < len(weeks) - 1
        else ""
    )
    body = (
        f'<p><a href="../../drift?provider={provider}">&uarr; all weeks</a> &nbsp; {prev_link} &nbsp; '
        f"{next_link}</p>"
        f'<iframe src="../../reports/drift/{escape(week)}?provider={provider}" '
        f'title="drift report {escape(week)}" '
        'style="width:100%;height:80vh;border:1px solid #e2e8f0" sandbox></iframe>'
    )
    return layout(f"Drift report {week}", "drift", body, provider, base="../../")


def to_json(value: Any) -> str:
    """JSON of a view, for the pages' JSON twins (dataclasses and numpy values as text)."""
    return json.dumps(value, default=lambda o: o.__dict__ if hasattr(o, "__dict__") else str(o))


def summary_page(dag_id: str, run_id: str, markdown: str) -> str:
    """A run's Markdown summary as HTML (bold, code, links and bullet lists: what it uses)."""
    import re

    def inline(text: str) -> str:
        text = escape(text)
        text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
        text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
        return re.sub(r"\[(.+?)\]\((/[^)\s]*)\)", r'<a href="\2" target="_top">\1</a>', text)

    out, in_list = [], False
    for line in markdown.splitlines():
        if line.startswith("- "):
            out.append(("" if in_list else "<ul>") + f"<li>{inline(line[2:])}</li>")
            in_list = True
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        out.append(f"<p>{inline(line)}</p>" if line.strip() else "")
    if in_list:
        out.append("</ul>")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Summary of {escape(run_id)}</title><style>{STYLE}</style></head><body>"
        f'<p class="muted">{escape(dag_id)} / {escape(run_id)}</p>{"".join(out)}</body></html>'
    )
