"""Open wangge GeoPackages in QGIS (PyQGIS, headless) as a planner would: every layer must come
up with our style from `layer_styles` (not QGIS's random single colour), and a rendered map is
saved to look at. Prints one JSON object per layer; exits 1 when a layer is not styled.

usage: open_styled.py OUT.png FILE.gpkg[|layername=NAME] ...
"""
import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402

app = QgsApplication([], False)
app.initQgis()
out, sources = sys.argv[1], sys.argv[2:]
layers, bad = [], 0
for src in sources:
    name = src.split("layername=")[-1] if "layername=" in src else os.path.basename(src)
    lyr = QgsVectorLayer(src, name, "ogr")
    if not lyr.isValid():
        print(json.dumps({"layer": src, "error": "not valid"}))
        bad += 1
        continue
    r = lyr.renderer()
    info = {
        "layer": name,
        "features": lyr.featureCount(),
        "renderer": r.type(),
        "labels": bool(lyr.labelsEnabled()),
    }
    if r.type() == "categorizedSymbol":
        info["attr"] = r.classAttribute()
        info["categories"] = [c.value() for c in r.categories()]
    else:
        sym = r.symbol()
        info["colour"] = sym.color().name() if sym else None
        info["outline"] = sym.symbolLayer(0).strokeColor().name() if sym and sym.symbolLayerCount() else None
    if lyr.labelsEnabled():
        s = lyr.labeling().settings()
        info["label_field"] = s.fieldName
        info["label_expression"] = bool(s.isExpression)
        info["label_font"] = s.format().font().family()
    print(json.dumps(info, ensure_ascii=False))
    layers.append(lyr)

# grids over buildings over communities: QGIS draws the first of the list on top
ORDER = ["roads", "communities", "streets", "grids", "buildings"]
order = sorted(layers, key=lambda l: ORDER.index(l.name()) if l.name() in ORDER else 9)
ms = QgsMapSettings()
ms.setLayers(order)
ms.setDestinationCrs(order[0].crs())
ms.setOutputDpi(120)
ext = None
for l in order:
    if l.name() == "grids":
        ext = l.extent()
ms.setExtent(ext or order[0].extent())
ms.setOutputSize(QSize(1400, 1000))
ms.setBackgroundColor(QColor(255, 255, 255))
job = QgsMapRendererParallelJob(ms)
job.start()
job.waitForFinished()
job.renderedImage().save(out, "png")
sys.stdout.flush()
# leave without tearing QGIS down: its exit segfaults in Qt's offscreen platform (QGIS 3.22)
os._exit(1 if bad else 0)
