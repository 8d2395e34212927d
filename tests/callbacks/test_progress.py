"""The progress table's pieces: text rows, the HTML table and bar a notebook shows (run in a kernel by test_notebook)."""

from __future__ import annotations

from learnloop.callbacks.progress import column_widths, format_row, format_time, html_bar, html_table


def test_html_table_has_a_header_and_one_row_per_epoch_escaped():
    html = html_table(["epoch", "valid<loss", "time"], [[0, 0.5, "00:01"], [1, 0.25, "00:02"]])
    assert html.startswith("<table") and html.endswith("</table>")
    assert "<th>valid&lt;loss</th>" in html
    body = html.split("<tbody>")[1]
    assert body.count("<tr>") == 2
    assert "<tr><td>1</td><td>0.250000</td><td>00:02</td></tr>" in body


def test_html_bar_shows_progress_and_time_left():
    bar = html_bar("epoch 0 train", 5, 20, elapsed=10.0)
    assert '<progress value="5" max="20"' in bar
    assert "epoch 0 train 5/20 [00:10&lt;00:30]" in bar
    assert "[00:00&lt;00:00]" in html_bar("epoch 0 valid", 0, 3, elapsed=0.0)


def test_text_rows_line_up_under_the_header():
    keys = ["epoch", "train_loss", "time"]
    widths = column_widths(keys)
    header, row = format_row(keys, widths), format_row([3, 0.1234567, format_time(3725)], widths)
    assert row == "3      0.123457    1:02:05"
    assert header.index("train_loss") == row.index("0.123457") and header.index("time") == row.index("1:02:05")
