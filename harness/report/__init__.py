"""Reports over run records: a self-contained HTML page (more formats belong here too)."""

from harness.report.html import render_html, write_report

__all__ = ["render_html", "write_report"]
