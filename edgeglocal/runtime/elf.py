"""The shared libraries an ELF file needs (its DT_NEEDED entries), read without loading it.

A plugin library built against one TensorRT major links ``libnvinfer.so.<major>``; TensorRT 11
changed the vtables of the logger interfaces, so such a library must never be loaded into another
major. Reading the dependency list lets ``doctor`` and the loader say so before ``dlopen`` fails
with a bare "cannot open shared object file" (or, worse, succeeds against the wrong ABI).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

_SHT_DYNAMIC = 6
_DT_NULL, _DT_NEEDED = 0, 1


def needed_libraries(path: str | os.PathLike) -> list[str]:
    """The DT_NEEDED sonames of the 64-bit ELF file ``path`` (x86_64, aarch64), in link order.

    Raises ``ValueError`` when ``path`` is not a 64-bit ELF shared object or executable.
    """
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or len(data) < 64:
        raise ValueError(f"{path} is not an ELF file")
    if data[4] != 2:
        raise ValueError(f"{path} is a 32-bit ELF file; only 64-bit libraries are read")
    order = "<" if data[5] == 1 else ">"
    shoff, = struct.unpack_from(order + "Q", data, 0x28)
    shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)

    def section(index: int) -> tuple[int, int, int, int]:
        """(type, link, offset, size) of section ``index``."""
        base = shoff + index * shentsize
        sh_type, = struct.unpack_from(order + "I", data, base + 4)
        offset, size, link = struct.unpack_from(order + "QQI", data, base + 0x18)
        return sh_type, link, offset, size

    try:
        for i in range(shnum):
            sh_type, link, offset, size = section(i)
            if sh_type != _SHT_DYNAMIC:
                continue
            strtab = section(link)[2]
            needed = []
            for tag, value in struct.iter_unpack(order + "qQ", data[offset : offset + size - size % 16]):
                if tag == _DT_NULL:
                    break
                if tag == _DT_NEEDED:
                    end = data.index(b"\0", strtab + value)
                    needed.append(data[strtab + value : end].decode())
            return needed
    except (struct.error, ValueError) as exc:
        raise ValueError(f"{path} has a damaged ELF section table ({exc})") from exc
    return []
