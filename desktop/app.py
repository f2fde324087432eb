"""The main window: a sidebar of pages (New run, Monitor, Runs, Compare, Export), the banner, and `main()`.

The window reads the run store and starts workers; it never holds a model, and it never
imports torch (a test checks sys.modules). Closing it while a run is going asks whether to
leave the run going; reopening re-attaches, since everything a run reports is in the store.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback

from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop import theme
from desktop.compare import ComparePage
from desktop.export import ExportPage
from desktop.monitor import MonitorPage
from desktop.new_run import NewRunPage
from desktop.runner import RunController
from desktop.runs import RunsPage
from desktop.settings import APP, ORG, settings
from desktop.widgets.banner import ErrorBanner, Notice
from desktop.widgets.page import stop_timers
from engine import __version__
from engine.store import RunStore

log = logging.getLogger(__name__)
PAGES = (("new_run", "New run", "new-run"), ("monitor", "Monitor", "monitor"), ("runs", "Runs", "runs"),
         ("compare", "Compare", "compare"), ("export", "Export", "export"))


class MainWindow(QMainWindow):
    def __init__(self, store: RunStore | None = None):
        super().__init__()
        self.setWindowTitle("Ponder")
        self.setWindowIcon(theme.icon("app", theme.current().accent))
        self.store = store or RunStore()
        self.controller = RunController(self.store, self)
        self.banner = ErrorBanner()
        self.new_run = NewRunPage(self.controller)
        self.monitor = MonitorPage(self.controller)
        self.runs = RunsPage(self.controller)
        self.compare = ComparePage(self.controller)
        self.export = ExportPage(self.controller)
        self.pages = {"new_run": self.new_run, "monitor": self.monitor, "runs": self.runs,
                      "compare": self.compare, "export": self.export}
        self._build()
        self._build_menus()
        self._connect()
        self._restore()
        self._on_controller_runs_changed(self.controller.runs)

    # ---- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setFixedWidth(190)
        self.sidebar.setIconSize(QSize(20, 20))
        self.stack = QStackedWidget()
        for key, text, icon in PAGES:
            item = QListWidgetItem(theme.icon(icon), text)
            item.setData(Qt.ItemDataRole.UserRole, key)
            item.setSizeHint(QSize(0, 40))
            self.sidebar.addItem(item)
            self.stack.addWidget(self.pages[key])
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)
        right = QVBoxLayout()
        right.setContentsMargins(12, 10, 12, 0)
        right.setSpacing(0)
        right.addWidget(self.banner)
        right.addWidget(self.stack, 1)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.sidebar)
        layout.addLayout(right, 1)
        self.setCentralWidget(central)
        store_label = QLabel(f"Run store: {self.store.path}")
        store_label.setProperty("role", "muted")
        self.statusBar().addPermanentWidget(store_label)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        keys = QKeySequence.StandardKey
        for text, shortcut, slot in (("&New run", keys.New, self._on_new_action_triggered),
                                     ("&Open spec…", keys.Open, self._on_open_action_triggered),
                                     ("&Save spec…", keys.Save, self._on_save_action_triggered)):
            action = QAction(text, self)
            action.setShortcut(shortcut)
            action.triggered.connect(slot)
            file_menu.addAction(action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        view = self.menuBar().addMenu("&View")
        theme_menu = view.addMenu("Theme")
        self.theme_actions = QActionGroup(self)
        for mode in theme.MODES:
            action = QAction(mode.capitalize() if mode != "system" else "Follow the system", self)
            action.setCheckable(True)
            action.setData(mode)
            action.setChecked(mode == theme.manager().mode)
            self.theme_actions.addAction(action)
            theme_menu.addAction(action)
        self.theme_actions.triggered.connect(self._on_theme_actions_triggered)
        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About Ponder", self)
        about.triggered.connect(self._on_about_action_triggered)
        help_menu.addAction(about)

    def _connect(self) -> None:
        self.controller.sig_runs_changed.connect(self._on_controller_runs_changed)
        self.controller.sig_run_failed.connect(self._on_controller_run_failed)
        self.controller.sig_run_ended.connect(self._on_controller_run_ended)
        self.controller.sig_start_failed.connect(self.banner.show_error)
        self.new_run.sig_run_started.connect(self._on_new_run_run_started)
        self.new_run.sig_error.connect(self.banner.show_error)
        self.runs.sig_show_run.connect(self.show_run)
        self.runs.sig_use_spec.connect(self._on_runs_use_spec)
        self.runs.sig_compare.connect(self._on_runs_compare)
        self.runs.sig_error.connect(self.banner.show_error)
        self.monitor.sig_show_error.connect(self.banner.show_error)
        self.compare.sig_error.connect(self.banner.show_error)
        self.export.sig_error.connect(self.banner.show_error)
        self.runs.sig_export.connect(self._on_runs_export)
        self.runs.sig_export_checkpoint.connect(self._on_export_checkpoint)
        self.compare.sig_export_checkpoint.connect(self._on_export_checkpoint)
        self.banner.sig_show_run.connect(self.show_run)
        theme.manager().sig_changed.connect(self._on_theme_changed)

    # ---- navigation -------------------------------------------------------------------------------
    def show_page(self, key: str) -> None:
        self.sidebar.setCurrentRow([k for k, _, _ in PAGES].index(key))

    def current_page(self) -> str:
        return PAGES[self.sidebar.currentRow()][0]

    def show_run(self, run_id: int) -> None:
        self.monitor.show_run(run_id)
        self.show_page("monitor")

    def _on_new_action_triggered(self) -> None:
        self.show_page("new_run")

    def _on_open_action_triggered(self) -> None:
        self.show_page("new_run")
        self.new_run.ask_open_spec()

    def _on_save_action_triggered(self) -> None:
        self.show_page("new_run")
        self.new_run.ask_save_spec()

    def _on_new_run_run_started(self, run_id: int) -> None:
        self.show_run(run_id)

    def _on_runs_use_spec(self, spec: dict) -> None:
        self.new_run.set_spec_dict(spec)
        self.show_page("new_run")

    def _on_runs_export(self, run: dict) -> None:
        self.export.select_run(run["id"])
        self.show_page("export")

    def _on_export_checkpoint(self, run_id: int, key: str) -> None:
        """A point on an evaluation chart: that checkpoint (or the final adapter) on the Export page."""
        if not self.export.select_weights(run_id, key):
            self.banner.show_error(f"Run #{run_id} has no weights {key or 'adapter'} to export any more.", "")
            return
        self.show_page("export")

    def _on_runs_compare(self, run: dict) -> None:
        self.compare.prefill(run)
        self.show_page("compare")

    def _on_controller_runs_changed(self, runs: list[dict]) -> None:
        active = len(self.controller.active_runs())
        item = self.sidebar.item(1)
        item.setText(f"Monitor  ({active})" if active else "Monitor")
        item.setToolTip(f"{active} run{'s are' if active != 1 else ' is'} going" if active else "")

    def _on_controller_run_ended(self, run_id: int, status: str) -> None:
        run = next((r for r in self.controller.runs if r["id"] == run_id), {"name": ""})
        self.statusBar().showMessage(f"Run #{run_id} {run['name']} {status}.", 15000)

    def _on_controller_run_failed(self, run_id: int, message: str, details: str) -> None:
        self.banner.push(Notice(message, details, "error", run_id))

    def _on_theme_actions_triggered(self, action: QAction) -> None:
        theme.manager().apply(action.data())
        settings().setValue("theme", action.data())

    def _on_theme_changed(self, _theme) -> None:
        for i, (_, _, icon) in enumerate(PAGES):  # list items are no widgets: recolour their icons here
            self.sidebar.item(i).setIcon(theme.icon(icon))

    def _on_about_action_triggered(self) -> None:
        QMessageBox.about(self, "About Ponder", f"<b>Ponder {__version__}</b><br>R1-style reasoning fine-"
                                                f"tuning on one workstation.<br>Run store: {self.store.path}")

    # ---- settings and closing ---------------------------------------------------------------------
    def _restore(self) -> None:
        s = settings()
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1440, 900)
        page = s.value("window/page", "new_run")
        active = self.controller.active_runs()
        self.show_page("monitor" if active else page if page in self.pages else "new_run")

    def save_settings(self) -> None:
        s = settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/page", self.current_page())
        self.new_run.remember()
        s.sync()

    def ask_leave_running(self, runs: list[dict]) -> str:
        """Ask what to do with runs still going: "leave", "stop" or "cancel"."""
        names = ", ".join(f"#{r['id']} {r['name']}" for r in runs)
        going = f"{len(runs)} run{'s are' if len(runs) != 1 else ' is'} still going ({names})."
        box = QMessageBox(QMessageBox.Icon.Question, "Runs are still going", going, parent=self)
        box.setInformativeText("Leave them running in the background? Reopen Ponder to follow them again.")
        leave = box.addButton("Leave running", QMessageBox.ButtonRole.AcceptRole)
        stop = box.addButton("Stop them", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(leave)
        box.exec()
        return {leave: "leave", stop: "stop"}.get(box.clickedButton(), "cancel")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        active = self.controller.active_runs()
        if active:
            choice = self.ask_leave_running(active)
            if choice == "cancel":
                event.ignore()
                return
            if choice == "stop":
                for run in active:  # each worker saves a checkpoint after its current step, then exits
                    self.controller.stop(run["id"])
        self.save_settings()
        stop_timers(self)
        event.accept()


# ---- errors in the GUI itself -------------------------------------------------------------------------

class _ExceptionRelay(QObject):
    sig_exception = Signal(str, str)
    """An uncaught exception in any thread; arguments: message, traceback. Delivered on the GUI thread."""


def install_excepthooks(banner: ErrorBanner) -> _ExceptionRelay:
    """Route uncaught exceptions (GUI thread and other threads) to the banner; also log them."""
    relay = _ExceptionRelay(banner)
    relay.sig_exception.connect(banner.show_error, Qt.ConnectionType.QueuedConnection)

    def hook(exc_type, exc, tb) -> None:
        details = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("uncaught exception:\n%s", details)
        relay.sig_exception.emit(f"Unexpected error in Ponder: {exc_type.__name__}: {exc}", details)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:
            hook(args.exc_type, args.exc_value, args.exc_traceback)

    sys.excepthook = hook
    threading.excepthook = thread_hook
    return relay


def open_window() -> MainWindow | None:
    """The main window, or None once a dialog (and stderr) has said why it cannot open: a damaged or locked
    run store, a PONDER_HOME that is a file. Started from a desktop menu, nobody reads stderr."""
    from engine.errors import PonderError

    try:
        return MainWindow()
    except PonderError as exc:  # its message names the file and says what to do
        sys.stderr.write(f"ponder: {exc}\n")
        message = str(exc)
        QMessageBox.critical(None, "Ponder cannot start", message[:1].upper() + message[1:])
        return None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    QApplication.setOrganizationName(ORG)
    QApplication.setApplicationName(APP)
    QGuiApplication.setDesktopFileName("io.github.ponder.Ponder")  # Wayland: the launcher's icon and name
    app = QApplication.instance() or QApplication([sys.argv[0], *(argv or [])])
    theme.manager().apply(str(settings().value("theme", "system")))
    window = open_window()
    if window is None:
        return 1
    install_excepthooks(window.banner)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
