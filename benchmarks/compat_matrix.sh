#!/usr/bin/env bash
# Which (torch, triton, numpy) versions fastgan works with, measured.
#
# For each TORCH,TRITON[,NUMPY] argument: a fresh virtual environment with those versions
# (numpy: the newest the resolver picks when not given), fastgan installed into it from
# this checkout (a plain, non-editable `pip install`), then benchmarks/compat_smoke.py run
# from outside the checkout with TRITON_INTERPRET=1 and an empty FASTGAN_CACHE_DIR (so the
# native extension is built from scratch).  Prints one table row per pair as it finishes
# and the whole table (markdown) at the end.
#
#   benchmarks/compat_matrix.sh 2.4.1,3.0.0,1.26.4 2.11.0,3.6.0,2.4.6 2.11.0,3.6.0,2.3.5
#   benchmarks/compat_matrix.sh            # the default list below
#
# Environment: PYTHON (default python3) makes the venvs; COMPAT_DIR (default
# ${TMPDIR:-/tmp}/fastgan-compat) holds the venvs, build caches and logs (one log per pair,
# <name>.log); KEEP_VENVS=1 keeps the venvs (each is several GB with a CUDA build of
# torch); PIP_* variables reach pip as usual.  Exit status: 0 if every pair passed.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
DIR=${COMPAT_DIR:-${TMPDIR:-/tmp}/fastgan-compat}
mkdir -p "$DIR"
# a snapshot of the checkout (tracked and untracked, not ignored files): edits made while
# the matrix runs do not reach the later pairs
SRC="$DIR/src"
rm -rf "$SRC" && mkdir -p "$SRC"
git -C "$ROOT" ls-files -co --exclude-standard | tar -C "$ROOT" -cf - -T - | tar -C "$SRC" -xf - || exit 1

if [ $# -eq 0 ]; then
    set -- 2.4.1,3.0.0,1.26.4 2.5.1,3.1.0,1.26.4 2.11.0,3.6.0,2.4.6 2.11.0,3.6.0,2.3.5 2.13.0,3.9.0 2.15.0,3.9.0
fi

header="| torch | triton | numpy | python | install | import | torch backend | native (build) | triton interpreter | torch.compile | fastgan info | result |"
rule="|---|---|---|---|---|---|---|---|---|---|---|---|"
rows=()
failed=0

field() {  # field NAME LINE: the value of NAME=... in a RESULT/VERSIONS line
    sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<"$2"
}

for spec in "$@"; do
    IFS=, read -r torch_v triton_v numpy_v <<<"$spec"
    name="torch${torch_v}-triton${triton_v}-numpy${numpy_v:-latest}"
    venv="$DIR/venv-$name"
    log="$DIR/$name.log"
    cache="$DIR/cache-$name"
    work="$DIR/run-$name"
    rm -rf "$venv" "$cache" "$work"
    mkdir -p "$work"
    echo "=== $name (log: $log)" >&2
    : >"$log"
    numpy_req="numpy"
    [ -n "${numpy_v:-}" ] && numpy_req="numpy==$numpy_v"
    install=ok
    if ! { "$PYTHON" -m venv "$venv" &&
           "$venv/bin/python" -m pip install -q "torch==$torch_v" "triton==$triton_v" "$numpy_req" ninja filelock &&
           "$venv/bin/python" -m pip install -q --no-deps "$SRC"; } >>"$log" 2>&1; then
        install=FAIL
    fi
    result="" versions=""
    if [ $install = ok ]; then
        t0=$(date +%s)
        (cd "$work" && env -u PYTHONPATH TRITON_INTERPRET=1 FASTGAN_CACHE_DIR="$cache" \
            "$venv/bin/python" "$SRC/benchmarks/compat_smoke.py") >>"$log" 2>&1
        echo "smoke: $(( $(date +%s) - t0 )) s" >>"$log"
        result=$(grep '^RESULT ' "$log" | tail -1)
        versions=$(grep '^VERSIONS ' "$log" | tail -1)
    fi
    build=$(sed -n 's/^CHECK native:build ok \(.*\)/\1/p' "$log" | tail -1)
    native=$(field native "$result")
    [ -n "$build" ] && [ "$native" = ok ] && native="ok ($build)"
    verdict=pass
    if [ $install != ok ] || [ -z "$result" ] || grep -q 'FAIL' <<<"$result"; then
        verdict=FAIL
        failed=1
    fi
    row="| $torch_v | $triton_v | $(field numpy "$versions") | $(field python "$versions") | $install"
    row+=" | $(field import "$result") | $(field torch "$result") | $native | $(field triton "$result")"
    row+=" | $(field compile "$result") | $(field info "$result") | $verdict |"
    [ -n "$versions" ] && row="${row/| $torch_v |/| $(field torch "$versions") |}"
    rows+=("$row")
    echo "$row" >&2
    [ "${KEEP_VENVS:-0}" = 1 ] || rm -rf "$venv"
    rm -rf "$work"
done

echo
echo "$header"
echo "$rule"
printf '%s\n' "${rows[@]}"
exit $failed
