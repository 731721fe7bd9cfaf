"""Reading and writing safetensors files (the format of expc's checkpoints) without dependencies.

A file is an 8-byte little-endian header length, a JSON header (name -> dtype, shape, byte
offsets; "__metadata__" -> strings) and the raw little-endian tensor bytes.
"""

import json
import os
import struct
import zlib

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F64": np.float64, "U8": np.uint8, "I64": np.int64, "I32": np.int32}


def load_tensors(path, with_metadata=False):
    """name -> torch tensor (and the metadata dict when asked)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    metadata = header.pop("__metadata__", {}) or {}
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        array = np.frombuffer(data[base + start : base + end], dtype=DTYPES[info["dtype"]])
        tensors[name] = torch.from_numpy(array.reshape(info["shape"]).copy())
    return (tensors, metadata) if with_metadata else tensors


def checksum(arrays, metadata):
    """expc's checkpoint checksum (`run::checkpoint::checksum`): CRC-32 over each tensor's name,
    shape and values, then each metadata key and value, every length as a little-endian u64."""
    crc = 0

    def add(data):
        nonlocal crc
        crc = zlib.crc32(data, crc)

    def add_text(text):
        raw = text.encode()
        add(struct.pack("<Q", len(raw)))
        add(raw)

    for name in sorted(arrays, key=lambda n: n.encode()):
        array = arrays[name]
        add_text(name)
        add(struct.pack("<Q", array.ndim))
        for d in array.shape:
            add(struct.pack("<Q", d))
        add(struct.pack("<Q", array.size))
        add(array.astype("<f4").tobytes())
    for key in sorted(metadata, key=lambda k: k.encode()):
        if key != "expc.crc32":
            add_text(key)
            add_text(metadata[key])
    return f"{crc:08x}"


def save_tensors(path, tensors, metadata=None):
    """Writes float32 tensors atomically (temporary file, fsync, rename), names in sorted order,
    with expc's checksum in the metadata (`expc.crc32`), which `expc resume` verifies."""
    header, chunks, offset = {}, [], 0
    arrays = {}
    for name in sorted(tensors, key=lambda n: n.encode()):
        array = tensors[name].detach().to("cpu", torch.float32).contiguous().numpy()
        arrays[name] = array
        raw = array.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    metadata = {k: str(v) for k, v in (metadata or {}).items()}
    metadata["expc.crc32"] = checksum(arrays, metadata)
    header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
