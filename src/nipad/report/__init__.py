"""nipad.report: the self-contained HTML report of a test run (metric table, curves, histograms, hard examples)."""

from nipad.report.html import render_report, write_report

__all__ = ["render_report", "write_report"]
