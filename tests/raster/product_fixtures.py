"""Products made for the tests from documented layouts (no real package of these kinds is in ../shared/data).

* :func:`landsat_from_l8` - Landsat 7 ETM+ or 4-5 TM Collection 2 products **derived from the real
  Landsat-8 Level-2 scene** in ``s2l2a_landsatc2l2_formats/landsat8_c2l2_LC08_L2SP_001062_20201031``:
  its files are copied and renamed to the TM/ETM+ band numbering (OLI SR_B2 blue -> SR_B1, SR_B3 green
  -> SR_B2, SR_B4 red -> SR_B3, SR_B5 NIR -> SR_B4, SR_B6 SWIR1 -> SR_B5, SR_B7 SWIR2 -> SR_B7) and its
  MTL rewritten (SPACECRAFT_ID, SENSOR_ID, product ID, file names, date).  So each role holds the same
  real pixels as in the Landsat-8 scene, which is what the band-map tests check.  Its QA_PIXEL is the
  Landsat-8 one (cirrus bits included, which a real TM/ETM+ product never sets).  ``level=1`` makes a
  Level-1 (L1TP) product of the same pixels: files ``_B<n>.TIF``, the LEVEL2 groups dropped, the MTL's
  own LEVEL1_RADIOMETRIC_RESCALING and SUN_ELEVATION kept.
* :func:`hls_granule` - an HLS v2.0 L30 or S30 granule following the HLS v2.0 user guide's naming
  (``HLS.L30.T17SLU.2020209T155956.v2.0.B04.tif``), int16 reflectance × 1e4, nodata -9999, Fmask bits.
* :func:`gaofen_package` - a Gaofen L1A package following the CRESDA delivery layout
  (``GF2_PMS1_E113.5_N23.0_20160324_L1A0001474917.tar.gz`` holding ``...-MSS1.tiff``, ``...-PAN1.tiff``,
  their ``.rpb`` (RPC00B) and ``.xml`` (``ProductMetaData``: SatelliteID, SensorID, ProductLevel,
  CenterTime, SolarZenith, corner coordinates), quick-looks) with synthetic pixels and simple RPCs
  (latitude linear in rows, longitude linear in columns, plus a height term so that a DEM matters).
"""

from __future__ import annotations

import re
import shutil
import tarfile
from pathlib import Path

import numpy as np

L8 = "s2l2a_landsatc2l2_formats/landsat8_c2l2_LC08_L2SP_001062_20201031"
L8_ID = "LC08_L2SP_001062_20201031_20201106_02_T2"
#: OLI band number -> TM/ETM+ band number of the same role
OLI_TO_TM = {2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 7}


def landsat_from_l8(shared_data: Path, out: Path, *, spacecraft: int = 7, level: int = 2) -> Path:
    """A Landsat ``spacecraft`` (4, 5, 7, 8 or 9) Collection 2 product folder derived from the real L8 scene."""
    src = shared_data / L8
    letter = {4: "T", 5: "T", 7: "E", 8: "C", 9: "C"}[spacecraft]
    date = "20201031" if spacecraft >= 7 else "20091031"
    lvl = "L2SP" if level == 2 else "L1TP"
    pid = f"L{letter}0{spacecraft}_{lvl}_001062_{date}_20201106_02_T2"
    folder = out / pid
    folder.mkdir(parents=True)
    oli = spacecraft >= 8
    names: dict[str, str] = {}
    for n in range(2, 8):
        m = n if oli else OLI_TO_TM[n]
        new = f"{pid}_SR_B{m}.TIF" if level == 2 else f"{pid}_B{m}.TIF"
        shutil.copy(src / f"{L8_ID}_SR_B{n}.TIF", folder / new)
        names[str(m)] = new
    shutil.copy(src / f"{L8_ID}_QA_PIXEL.TIF", folder / f"{pid}_QA_PIXEL.TIF")
    text = (src / f"{L8_ID}_MTL.txt").read_text()
    sensor = {4: "TM", 5: "TM", 7: "ETM", 8: "OLI_TIRS", 9: "OLI_TIRS"}[spacecraft]
    text = text.replace('SPACECRAFT_ID = "LANDSAT_8"', f'SPACECRAFT_ID = "LANDSAT_{spacecraft}"')
    text = text.replace('SENSOR_ID = "OLI_TIRS"', f'SENSOR_ID = "{sensor}"')
    text = text.replace("DATE_ACQUIRED = 2020-10-31", f"DATE_ACQUIRED = {date[:4]}-{date[4:6]}-{date[6:]}")
    text = text.replace('PROCESSING_LEVEL = "L2SP"', f'PROCESSING_LEVEL = "{lvl}"')
    text = re.sub(r"\s*FILE_NAME_BAND_\w+ = \"[^\"]*\"", "", text)
    files = "".join(f'\n    FILE_NAME_BAND_{k} = "{v}"' for k, v in sorted(names.items()))
    files += f'\n    FILE_NAME_BAND_{"ST_B10" if oli else "ST_B6"} = "{pid}_{"ST_B10" if oli else "ST_B6"}.TIF"'
    text = text.replace('    PROCESSING_LEVEL = "' + lvl + '"', '    PROCESSING_LEVEL = "' + lvl + '"' + files, 1)
    text = text.replace(L8_ID, pid).replace("LC08_L1GT_001062_20201031_20201106_02_T2", pid.replace(lvl, "L1GT"))
    if level == 1:
        text = re.sub(r"  GROUP = LEVEL2_\w+.*?  END_GROUP = LEVEL2_\w+\n", "", text, flags=re.S)
    (folder / f"{pid}_MTL.txt").write_text(text)
    return folder


def hls_granule(out: Path, *, kind: str = "L", rng: np.random.Generator | None = None) -> Path:
    """An HLS v2.0 granule folder (``kind`` "L" for L30, "S" for S30), 20 x 20 px at 30 m, with an Fmask."""
    from tests.conftest import write_raster

    rng = rng or np.random.default_rng(3)
    folder = out / f"HLS.{kind}30.T50RQU.2021262T024529.v2.0"
    folder.mkdir(parents=True)
    bands = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B09", "B10", "B11"] if kind == "L" else \
        ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
    from affine import Affine

    t = Affine(30, 0, 600_000, 0, -30, 3_400_000)
    for i, b in enumerate(bands):
        v = (rng.random((20, 20)) * 500 + 500 + 100 * i).astype("int16")
        v[0, 0] = -9999
        write_raster(folder / f"{folder.name}.{b}.tif", v, transform=t, crs="EPSG:32650", nodata=-9999)
    fmask = np.zeros((20, 20), dtype="uint8")
    fmask[5, 5] = 0b10  # cloud
    fmask[6, 6] = 0b1000  # cloud shadow
    fmask[7, 7] = 0b100000  # water: kept
    fmask[8, 8] = 0b1000000  # aerosol bit only: kept
    write_raster(folder / f"{folder.name}.Fmask.tif", fmask, transform=t, crs="EPSG:32650")
    return folder


# --- Gaofen ------------------------------------------------------------------------------------------
_XML = """<?xml version="1.0" encoding="UTF-8"?>
<ProductMetaData>
  <SatelliteID>{sat}</SatelliteID>
  <SensorID>{sensor}</SensorID>
  <ReceiveTime>{date} 11:06:52</ReceiveTime>
  <OrbitID>7390</OrbitID>
  <ProduceType>STANDARD</ProduceType>
  <SceneID>4413301</SceneID>
  <ProductID>{pid}</ProductID>
  <ProductLevel>LEVEL1A</ProductLevel>
  <ProductFormat>GEOTIFF</ProductFormat>
  <Bands>{bands}</Bands>
  <StartTime>{date} 11:06:44</StartTime>
  <EndTime>{date} 11:06:49</EndTime>
  <CenterTime>{date} 11:06:47</CenterTime>
  <ImageGSD>{gsd}</ImageGSD>
  <WidthInPixels>{cols}</WidthInPixels>
  <HeightInPixels>{rows}</HeightInPixels>
  <CloudPercent>0</CloudPercent>
  <PixelBits>10</PixelBits>
  <SolarAzimuth>135.0</SolarAzimuth>
  {zenith}
  <SatelliteAzimuth>100.0</SatelliteAzimuth>
  <SatelliteZenith>88.0</SatelliteZenith>
  <TopLeftLatitude>{top}</TopLeftLatitude>
  <TopLeftLongitude>{left}</TopLeftLongitude>
  <TopRightLatitude>{top}</TopRightLatitude>
  <TopRightLongitude>{right}</TopRightLongitude>
  <BottomRightLatitude>{bottom}</BottomRightLatitude>
  <BottomRightLongitude>{right}</BottomRightLongitude>
  <BottomLeftLatitude>{bottom}</BottomLeftLatitude>
  <BottomLeftLongitude>{left}</BottomLeftLongitude>
</ProductMetaData>
"""


def _rpb(path: Path, rows: int, cols: int, lat0: float, lon0: float, dlat: float, dlon: float, h_term: float) -> None:
    """An RPC00B .rpb: row = f(lat), col = g(lon) + h_term × (height - 100) / 500 × samp_scale."""
    zeros = [0.0] * 20
    line_num = list(zeros)
    line_num[2] = -1.0  # P (latitude): rows grow southward
    samp_num = list(zeros)
    samp_num[1] = 1.0  # L (longitude)
    samp_num[3] = h_term  # H (height)
    one = [1.0] + [0.0] * 19

    def coefs(c: list[float]) -> str:
        return "(\n" + ",\n".join(f"\t\t\t{v:+.15e}" for v in c) + ");"

    path.write_text(
        f'satId = "GF";\nbandId = "P";\nSpecId = "RPC00B";\nBEGIN_GROUP = IMAGE\n'
        f"\terrBias = 1.0;\n\terrRand = 0.0;\n"
        f"\tlineOffset = {rows / 2};\n\tsampOffset = {cols / 2};\n"
        f"\tlatOffset = {lat0};\n\tlongOffset = {lon0};\n\theightOffset = 100;\n"
        f"\tlineScale = {rows / 2};\n\tsampScale = {cols / 2};\n"
        f"\tlatScale = {dlat * rows / 2};\n\tlongScale = {dlon * cols / 2};\n\theightScale = 500;\n"
        f"\tlineNumCoef = {coefs(line_num)}\n\tlineDenCoef = {coefs(one)}\n"
        f"\tsampNumCoef = {coefs(samp_num)}\n\tsampDenCoef = {coefs(one)}\n"
        "END_GROUP = IMAGE\nEND;\n"
    )


def _l1a_image(path: Path, arr: np.ndarray) -> None:
    import warnings

    import rasterio
    import rasterio.errors

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                           dtype="uint16", tiled=True, blockxsize=64, blockysize=64) as ds:
            ds.write(arr)


def gaofen_package(out: Path, *, sat: str = "GF2", sensor: str = "PMS1", date: str = "2016-03-24",
                   size_ms: int = 64, zenith: float | None = 35.0, h_term: float = 0.0, archive: bool = True,
                   with_pan: bool = True) -> Path:
    """A Gaofen L1A package (a .tar.gz, or its folder with ``archive=False``).

    Pixels: the multispectral image is DN = (60, 80, 70, 300) (blue, green, red, NIR: vegetation) in
    its left half and (200, 220, 240, 260) (bare soil) in its right half, with a bright 4 x 4 block at
    rows 10-13, columns 40-43 (DN 900 in every band).  The panchromatic image (4 x finer) is the mean
    of the four bands, with a dark 4 x 4 pixel spot (DN 20) at pan rows 100-103, columns 20-23 that is
    too small to show in the multispectral image.  Ground: 23.0 N, 113.5 E at the centre; GSD from
    the sensor (GF-2 3.2 m / 0.8 m; GF-1 WFV 16 m).
    """
    wfv = sensor.startswith("WFV") or sensor == "WFV"
    nb = 8 if (sat == "GF6" and wfv) else 4
    gsd_ms = 16.0 if wfv else {"GF2": 3.2, "GF1": 8.0, "GF6": 8.0}[sat]
    stamp = date.replace("-", "")
    base = f"{sat}_{sensor}_E113.5_N23.0_{stamp}_L1A0001474917"
    folder = out / base
    folder.mkdir(parents=True)
    lat0, lon0 = 23.0, 113.5
    dlat = gsd_ms / 110_574.0
    dlon = gsd_ms / (111_320.0 * np.cos(np.radians(lat0)))
    n = size_ms
    ms = np.zeros((nb, n, n), dtype="uint16")
    veg = [60, 80, 70, 300, 120, 200, 50, 75][:nb]
    soil = [200, 220, 240, 260, 250, 255, 190, 230][:nb]
    for b in range(nb):
        ms[b, :, : n // 2] = veg[b]
        ms[b, :, n // 2:] = soil[b]
        ms[b, 10:14, 40:44] = 900
    ms_name = f"{base}.tiff" if wfv else f"{base}-MSS{sensor[-1] if sensor[-1].isdigit() else ''}.tiff"
    if sat == "GF6" and not wfv:
        ms_name = f"{base}-MUX.tiff"
    _l1a_image(folder / ms_name, ms)
    corners = dict(top=lat0 + dlat * n / 2, bottom=lat0 - dlat * n / 2, left=lon0 - dlon * n / 2,
                   right=lon0 + dlon * n / 2)
    zen = f"<SolarZenith>{zenith}</SolarZenith>" if zenith is not None else ""
    common = dict(sat=sat, sensor=sensor, date=date, pid="1474917", zenith=zen, **corners)
    _rpb(folder / Path(ms_name).with_suffix(".rpb").name, n, n, lat0, lon0, dlat, dlon, h_term)
    (folder / Path(ms_name).with_suffix(".xml").name).write_text(
        _XML.format(bands=",".join(str(i) for i in range(1, nb + 1)), gsd=gsd_ms, cols=n, rows=n, **common))
    (folder / Path(ms_name).with_suffix(".jpg").name).write_bytes(b"\xff\xd8\xff\xd9")  # a quick-look stub
    if with_pan and not wfv:
        k = 4
        pan = np.repeat(np.repeat(ms[:4].astype(np.float64).mean(axis=0), k, axis=0), k, axis=1)
        pan[100:104, 20:24] = 20
        pan_name = f"{base}-PAN{sensor[-1] if sensor[-1].isdigit() else ''}.tiff"
        _l1a_image(folder / pan_name, pan[None].astype("uint16"))
        _rpb(folder / Path(pan_name).with_suffix(".rpb").name, n * k, n * k, lat0, lon0, dlat / k, dlon / k, h_term)
        (folder / Path(pan_name).with_suffix(".xml").name).write_text(
            _XML.format(bands="1", gsd=gsd_ms / k, cols=n * k, rows=n * k, **common))
    if not archive:
        return folder
    tgz = out / f"{base}.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        for p in sorted(folder.iterdir()):
            tf.add(p, arcname=p.name)
    shutil.rmtree(folder)
    return tgz
