"""`python -m desktop.widgets.evalplot EVAL_ID --store DB --out FILE.png`: the efficiency-frontier chart of a
stored evaluation, written headless (offscreen Qt, pyqtgraph's image exporter). `ponder eval --plot` runs it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def write_png(summary: dict, out: Path, width: int = 900, height: int = 600) -> None:
    import pyqtgraph.exporters
    from PySide6.QtWidgets import QApplication

    from desktop.widgets.evalcharts import FrontierPlot

    app = QApplication.instance() or QApplication([])
    plot = FrontierPlot()
    plot.resize(width, height)
    plot.set_summary(summary)
    plot.show()
    app.processEvents()  # lay the chart out once (a headless process, no GUI thread to keep responsive)
    exporter = pyqtgraph.exporters.ImageExporter(plot.scene())
    exporter.parameters()["width"] = width
    out.parent.mkdir(parents=True, exist_ok=True)
    exporter.export(str(out))
    plot.close()


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    parser = argparse.ArgumentParser(prog="python -m desktop.widgets.evalplot")
    parser.add_argument("eval_id", type=int)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from engine.store import RunStore

    with RunStore(args.store) as store:
        summary = store.get_evaluation(args.eval_id)["summary"] or {}
    write_png(summary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
