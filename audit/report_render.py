"""The handling report (取扱状況報告) as Markdown, HTML or xlsx sheets, for a 保護管理者 who never
used tachiai.

Japanese first, with the English term in brackets where a word is the ledger's own; periods in
和暦 with 西暦 beside them. Every format comes from one list of sections, so they always say the
same thing. HTML is one self-contained file, escaped throughout.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field

from audit.checkpoints import format_time
from audit.export import Sheet
from audit.report import MemberPart, Report, when

Table = tuple[list[str], list[list[str]]]


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    table: Table | None = None
    empty: str = "該当なし (none)"


def markdown(report: Report) -> str:
    out = [f"# 取扱状況報告 (handling report) — 確認書 {report.agreement}", ""]
    for s in sections(report):
        out += [f"## {s.title}", ""]
        out += [*s.lines, ""] if s.lines else []
        if s.table is not None:
            heads, rows = s.table
            if rows:
                out.append("| " + " | ".join(heads) + " |")
                out.append("|" + "---|" * len(heads))
                out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
            else:
                out.append(s.empty)
            out.append("")
    return "\n".join(out)


def html_page(report: Report) -> str:
    e = html.escape
    title = f"取扱状況報告 — 確認書 {report.agreement} — {report.period.wareki}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="ja"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>取扱状況報告 (handling report) — 確認書 {e(report.agreement)}</h1>",
    ]
    for s in sections(report):
        out.append(f"<h2>{e(s.title)}</h2>")
        out += [f"<p>{e(line.removeprefix('- '))}</p>" for line in s.lines]
        if s.table is not None:
            heads, rows = s.table
            if not rows:
                out.append(f"<p>{e(s.empty)}</p>")
                continue
            out.append(
                "<table><thead><tr>"
                + "".join(f"<th>{e(h)}</th>" for h in heads)
                + "</tr></thead><tbody>"
            )
            out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows]
            out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def xlsx_sheets(report: Report) -> list[Sheet]:
    """The report as worksheets for `audit.export.write_xlsx`: one per section, its lines above
    its table (without Markdown's list marks)."""
    sheets = []
    for s in sections(report):
        lines = [line.removeprefix("- ").replace("**", "") for line in s.lines]
        heads, rows = s.table if s.table is not None else ([], [])
        if s.table is not None and not rows:
            lines.append(s.empty)
        sheets.append(Sheet(s.title, heads, rows, lines))
    return sheets


def sections(r: Report) -> list[Section]:
    p = r.period
    last_day = p.end - dt.timedelta(days=1)
    head = Section(
        "対象と根拠 (scope and evidence)",
        [
            f"- 対象期間: {p.wareki}、日本時間",
            f"- 西暦: {p.label} ({p.start.isoformat()} 〜 {last_day.isoformat()})",
            f"- 作成日時: {when(r.generated_ns)} (tachiai audit report)",
            "- この報告は監査ログ (ledger) の記録だけから作成しています。"
            "個人情報そのものは含みません(ファイルは SHA-256 ハッシュと行数で示します)。",
            *_evidence(r),
        ],
    )
    delivered = r.delivered()
    summary = Section(
        "1. 概要 (summary)",
        table=(
            ["項目", "件数"],
            [
                ["期間中に記録のある提供 (transfers)", str(len(r.transfers))],
                ["送付済み (delivered)", str(len(delivered))],
                ["送付した行数 (rows delivered)", str(sum(t.rows or 0 for t in delivered))],
                ["拒否 (rejections)", str(len({x.transfer for x in r.rejections}))],
                ["承認の拒否 (refused approvals)", str(len(r.refusals))],
                ["期限後の提供 (late provisions)", str(len(r.late))],
                ["承認期限切れ (transfers expired unapproved)", str(len(r.expired()))],
                ["重複送信の確認 (duplicate notices: bytes already delivered)",
                 str(len(r.duplicates()))],
                [
                    "期間末に保有中 (holdings not yet deleted or returned)",
                    str(sum(1 for h in r.holdings if not h.closed)),
                ],
                [
                    "期限超過・要対応 (overdue or open)",
                    str(len(r.overdue_holdings()) + len(r.open_transfers())),
                ],
            ],
        ),
    )
    transfers = Section(
        "2. 提供の記録 (transfers): 送信者と立会者",
        [
            "- 各提供は、送信者 (sender) と少なくとも1名の立会者 (witness) が同じファイル "
            "(SHA-256) を承認したうえで送付されます。",
        ],
        table=(
            [
                "転送ID",
                "フロー",
                "受付",
                "提供元→提供先",
                "送信者",
                "立会者",
                "行数",
                "SHA-256 (先頭16桁)",
                "状態",
                "送付",
            ],
            [
                [
                    t.id,
                    t.flow,
                    when(t.received_ns),
                    _parties(t.provider, t.recipient),
                    t.sender or "—",
                    "、".join(t.witnesses) or "—",
                    "—" if t.rows is None else str(t.rows),
                    t.sha256[:16] or "—",
                    t.state or "—",
                    when(t.delivered_ns),
                ]
                for t in r.transfers
            ],
        ),
    )
    rejections = Section(
        "3. 拒否 (rejections) と根拠となる条項",
        table=(
            ["転送ID", "日時", "段階", "判断者", "規則 (rule)", "内容", "確認書の条項 (term)"],
            [
                [
                    x.transfer,
                    when(x.time_ns),
                    x.stage or "—",
                    x.by,
                    x.rule,
                    x.message,
                    x.term or "—",
                ]
                for x in r.rejections
            ],
        ),
    )
    refusals = Section(
        "4. 承認の拒否 (refused approvals)",
        [
            "- 指定されていない人の署名、別のファイルへの署名などで、承認として数えなかったもの。",
        ],
        table=(
            ["転送ID", "日時", "署名者", "規則", "内容"],
            [[x.transfer, when(x.time_ns), x.signer, x.rule, x.message] for x in r.refusals],
        ),
    )
    late = Section(
        "5. 期限後の提供 (late provisions)",
        table=(
            ["記録日時", "フロー", "対象期間", "期限", "転送ID", "内容"],
            [
                [
                    when(x.time_ns),
                    f"{x.flow} → {x.member}" if x.member else x.flow,
                    x.period or "—",
                    x.due or "—",
                    x.transfer or "未提供 (not provided)",
                    x.reason or "—",
                ]
                for x in r.late
            ],
        ),
    )
    holdings = Section(
        "6. 保有データと消去・返却 (holdings, deletion or return)",
        table=(
            ["保有ID", "転送ID", "受領", "取扱者", "期限", "消去・返却", "日時", "証明者"],
            [
                [
                    h.id,
                    h.transfer or "—",
                    when(h.received_ns),
                    h.handler or "—",
                    h.deadline or "—",
                    h.closed or "未了 (open)",
                    when(h.closed_ns),
                    h.closed_by or "—",
                ]
                for h in r.holdings
            ],
        ),
    )
    overdue = Section(
        "7. 期限超過・要対応 (overdue and open items)",
        [
            *(
                f"- 保有 {h.id}: 期限 {h.deadline or '—'}、"
                + (
                    f"{h.closed} {when(h.closed_ns)} (期限後)"
                    if h.closed
                    else "消去・返却の記録なし"
                )
                for h in r.overdue_holdings()
            ),
            *(f"- 転送 {t.id}: 期間末の状態は {t.state}" for t in r.open_transfers()),
        ]
        or ["該当なし (none)"],
    )
    how = Section(
        "検証の方法 (how to check this report)",
        [
            "- 監査ログの写しと署名付きチェックポイントから、誰でも同じ結果を再現できます:",
            "- tachiai audit verify --ledger 写し.db --checkpoint チェックポイントのフォルダ "
            "--public-key ledger.pub",
            f"- tachiai audit report --ledger 写し.db --agreement {r.agreement} --period …",
        ],
    )
    extra_late = [_fanouts(r)] if r.fanouts else []
    # One line per partition (区画) only where this gateway holds several parties' data.
    parts = r.member_parts()
    extra_holdings = [_member_parts(parts)] if len(parts) > 1 else []
    return [head, summary, transfers, rejections, refusals, late, *extra_late, holdings,
            *extra_holdings, overdue, how]


def _fanouts(r: Report) -> Section:
    """5-2: each fan-out of the period, one line per member's part and whether it arrived."""
    rows = []
    for f in r.fanouts:
        for member, count, transfer in f.children:
            done = r.delivered_ns(transfer)
            rows.append([f.id, f.holding, f.flow, member, str(count), transfer,
                         when(done) if done is not None else "未送付 (not delivered)"])
    withheld = [f"- {f.id}: 保留した行 (rows withheld) "
                + ", ".join(f"{k}={v}" for k, v in sorted(f.withheld.items()))
                for f in r.fanouts if f.withheld]
    return Section("5-2. 分割提供の各部分 (each member's part of a fan-out)", withheld,
                   table=(["分割ID", "元の保有", "フロー", "提供先 (member)", "行数", "転送ID",
                           "送付"], rows))


def _member_parts(parts: list[MemberPart]) -> Section:
    """6-2: each partition's (区画) holdings, received to certified."""
    return Section(
        "6-2. 区画ごとの取扱状況 (each member's part)",
        ["- 区画ごとにアクセス制御: 各区画のデータは、その団体の指定された受信担当者だけが"
         "開封し、消去・返却を証明します。"],
        table=(["区画 (party)", "受領ファイル", "行数", "保有中", "開封済み", "消去・返却の証明",
                "消去済み", "拒否した要求"],
               [[x.party, str(x.files), str(x.rows), str(x.held), str(x.opened),
                 str(x.certified), str(x.erased), str(x.refused_requests)] for x in parts]),
    )


def _evidence(r: Report) -> list[str]:
    v = r.verification
    if v is None:
        return ["- 検証: **行っていません** (--no-verify)。数値は検証前の記録です。"]
    lines = [
        f"- 監査ログ: {v.size} 件のイベント、ルートハッシュ {v.root.hex()}",
        f"- 検証: 全イベントのハッシュと木構造を再計算し、一致を確認しました "
        f"({v.heads} 個の tree head)。",
    ]
    latest = v.latest_signed
    if latest is None:
        lines.append(
            "- **注意**: 署名付きチェックポイントを信頼できる公開鍵で確認していません。"
            "ログの内部整合性は確認済みですが、書き換えられていないことの証明には、"
            "別に保管されたチェックポイントと公開鍵による検証が必要です。"
        )
    else:
        cp = latest.checkpoint
        lines.append(
            f"- 署名付きチェックポイント {len(v.signed)} 件を公開鍵で確認 "
            f"(最新: {format_time(cp.time_ns)}、{cp.size} 件まで、{latest.source})。"
            f"それ以降の {max(v.size - cp.size, 0)} 件はまだ署名されていません。"
        )
    return lines


def _parties(provider: str, recipient: str) -> str:
    if not provider and not recipient:
        return "—"
    return f"{provider or '?'}→{recipient or '?'}"


def _md(cell: str) -> str:
    return cell.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


_CSS = (
    "body{font-family:sans-serif;margin:2em;line-height:1.5}"
    "table{border-collapse:collapse;margin:.5em 0}"
    "th,td{border:1px solid #999;padding:.2em .5em;text-align:left;vertical-align:top}"
    "th{background:#eee}"
)
