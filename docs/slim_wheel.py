"""Shrink the lalsuite wheel the lent GPU needs, so that it fits beside the repository in one call's
64 MiB: drop the packages gwviz never imports (lalapps, lalpulsar, lalinference, lalburst and the
scripts; ~10 MB) but keep the O3 noise curves that lalsimulation reads from lalapps/data
(LIGO-T1800545-*), keep every shared library (they link to each other), and fix RECORD.

    python docs/slim_wheel.py .whl/lalsuite-7.26.16-cp312-cp312-manylinux_2_28_x86_64.whl

writes the slim wheel in place of the original (same file name, so `pip install .whl/*.whl` still works).
"""
import os
import sys
import zipfile

DROP = ("lalapps/", "lalpulsar/", "lalinference/", "lalburst/", "lalsuite-7.26.16.data/scripts/")
KEEP = ("lalapps/data/LIGO-T1800545-",)  # the O3 PSD fits of gwviz.data.psd (SimNoisePSDaLIGOaLIGOO3LowT1800545, ...)


def dropped(name: str) -> bool:
    return name.startswith(DROP) and not name.startswith(KEEP)


src = sys.argv[1]
tmp = src + ".slim"
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
    for item in zin.infolist():
        name = item.filename
        if dropped(name):
            continue
        data = zin.read(name)
        if name.endswith(".dist-info/RECORD"):
            lines = data.decode().splitlines()
            data = ("\n".join(line for line in lines if not dropped(line)) + "\n").encode()
        zout.writestr(item, data)
before, after = os.path.getsize(src), os.path.getsize(tmp)
os.replace(tmp, src)
print(f"{src}: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
