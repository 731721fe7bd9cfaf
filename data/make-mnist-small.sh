#!/usr/bin/env bash
# Regenerates data/mnist-small/ from the four official MNIST idx files: the first NTRAIN training digits and
# the first NTEST test digits, with headers rewritten to the new counts, gzip-compressed without name or time
# stamp (gzip -9n) so the output is reproducible with the same gzip.
#
# Usage: data/make-mnist-small.sh [SRC_DIR [OUT_DIR [NTRAIN [NTEST]]]]
#   SRC_DIR  folder with train-images-idx3-ubyte[.gz] etc. (default: ../shared/data/mnist next to the repo)
#   OUT_DIR  default: data/mnist-small
# Needs only bash, coreutils and gzip.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
SRC=${1:-$here/../../shared/data/mnist}
OUT=${2:-$here/mnist-small}
NTRAIN=${3:-5000}
NTEST=${4:-1000}

# Writes a 32-bit big-endian integer.
be32() { local n=$1 s; for s in 24 16 8 0; do printf "\\$(printf %03o $(( (n >> s) & 255 )))"; done; }

# Decompressed content of an official file (raw or .gz).
src() {
  if [ -f "$SRC/$1.gz" ]; then gzip -dc "$SRC/$1.gz"
  elif [ -f "$SRC/$1" ]; then cat "$SRC/$1"
  else echo "missing $SRC/$1[.gz]" >&2; exit 1; fi
}

# take NAME N HEADER_LEN RECORD_LEN MAGIC [DIMS...]
take() {
  local name=$1 n=$2 hlen=$3 rlen=$4 magic=$5; shift 5
  local want=$(( hlen + n * rlen ))
  { be32 "$magic"; be32 "$n"; for d in "$@"; do be32 "$d"; done
    src "$name" | head -c $(( hlen + n * rlen )) | tail -c +$(( hlen + 1 )); } | gzip -9n > "$OUT/$name.gz"
  local got; got=$(gzip -dc "$OUT/$name.gz" | wc -c)
  if [ "$got" -ne "$want" ]; then echo "$OUT/$name.gz: $got bytes, expected $want" >&2; exit 1; fi
}

mkdir -p "$OUT"
take train-images-idx3-ubyte "$NTRAIN" 16 784 2051 28 28
take train-labels-idx1-ubyte "$NTRAIN" 8 1 2049
take t10k-images-idx3-ubyte "$NTEST" 16 784 2051 28 28
take t10k-labels-idx1-ubyte "$NTEST" 8 1 2049
(cd "$OUT" && md5sum ./*.gz && du -ch ./*.gz | tail -1) >&2
