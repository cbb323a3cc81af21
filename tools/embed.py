#!/usr/bin/env python3
"""embed.py IN OUT SYMBOL: writes a C file defining SYMBOL (the bytes of IN,
NUL-terminated) and SYMBOL_len, so a page ships inside the binary."""
import sys

src, dst, symbol = sys.argv[1:4]
data = open(src, "rb").read()
with open(dst, "w") as out:
    out.write(f"/* Generated from {src} by tools/embed.py: do not edit. */\n")
    out.write("#include <stddef.h>\n\n")
    out.write(f"const char {symbol}[] = {{\n")
    for i in range(0, len(data), 16):
        out.write("    " + ", ".join(str(b) for b in data[i:i + 16]) + ",\n")
    out.write("    0,\n};\n")
    out.write(f"const size_t {symbol}_len = {len(data)};\n")
