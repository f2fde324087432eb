"""A stand-in for `python -m engine.export`: the same stdout protocol, no model.

    python fake_export.py MODE OUT      MODE: ok (writes OUT/README.md), fail, slow (for Cancel)
"""

import sys
import time
from pathlib import Path

mode, out = sys.argv[1], Path(sys.argv[2])
for i, what in enumerate(("reading the run", "writing the adapter", "writing the tokenizer"), start=1):
    sys.stdout.write(f"progress {i}/4 {what}\n")
    sys.stdout.flush()
    time.sleep(30 if mode == "slow" else 0.05)
if mode == "fail":
    sys.stdout.write("error no space left on the device: /full/disk\n")
    sys.exit(1)
out.mkdir(parents=True)
(out / "README.md").write_text("# fake-run\n\nTrained with **Ponder** on arithmetic.\n")
sys.stdout.write(f"progress 4/4 writing the spec and the model card\nexported {out}\n")
