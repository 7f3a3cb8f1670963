#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for SECONDS each (default 20):
#
#   fuzz/run.sh [SECONDS]
#
# Needs the nightly toolchain (`cargo +nightly`); without it this prints a
# loud SKIPPED line and exits 0. Installs cargo-fuzz when it is missing.
# Builds all targets once (libFuzzer + AddressSanitizer, optimised, with
# debug assertions and overflow checks), checks every seed in
# seeds/<target>/ (the parser must accept it, or reject it when its name
# starts with `bad-`), then fuzzes each target on corpus/<target>/ (kept
# between runs, ignored by git) plus its seeds, FUZZ_JOBS targets at a time
# (default: the number of cores). Prints the executions of each target and
# exits non-zero if any target crashed, hung or ran out of memory; the input
# is in artifacts/<target>/.
#
# FUZZ_CODEGEN_UNITS (default 16) trades speed: 16 builds a cold tree about
# a fifth faster than cargo-fuzz's own default of 1, whose targets run 10 to
# 25% faster; use 1 for long runs. FUZZ_TARGET_DIR (default fuzz/target)
# puts the build elsewhere, e.g. somewhere kept between fresh clones.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-20}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS]   (whole seconds per target, default 20)" >&2
  exit 2
fi

if ! nightly=$(cargo +nightly --version 2>&1); then
  echo "!!! ================================================================="
  echo "!!! fuzz smoke SKIPPED: no nightly toolchain (cargo +nightly --version:"
  echo "!!!   ${nightly//$'\n'/ })"
  echo "!!! install it with: rustup toolchain install nightly"
  echo "!!! ================================================================="
  exit 0
fi
echo "== fuzz: $nightly"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

host=$(rustc +nightly -vV | sed -n 's/^host: //p')
target_dir=${FUZZ_TARGET_DIR:-target}
bin_dir=$target_dir/$host/release
# `cargo fuzz list` reads the [[bin]] entries of Cargo.toml.
mapfile -t targets < <(cargo +nightly fuzz list)
if ((${#targets[@]} == 0)); then
  echo "fuzz: no targets" >&2
  exit 1
fi

echo "== fuzz: building ${#targets[@]} targets: ${targets[*]}"
start=$SECONDS
cargo +nightly fuzz build -O --debug-assertions \
  --codegen-units "${FUZZ_CODEGEN_UNITS:-16}" --target-dir "$target_dir"
echo "== fuzz: built in $((SECONDS - start)) s"

# The logs of the last run, for a closer look.
log_dir=target/run-logs
rm -rf "$log_dir"
mkdir -p "$log_dir"
failed=()

echo "== fuzz: seeds"
for target in "${targets[@]}"; do
  good=()
  bad=()
  for file in seeds/"$target"/*; do
    [[ -f $file ]] || continue
    case ${file##*/} in
      bad-*) bad+=("$file") ;;
      *) good+=("$file") ;;
    esac
  done
  for expect in accepted rejected; do
    if [[ $expect == accepted ]]; then files=("${good[@]}"); else files=("${bad[@]}"); fi
    ((${#files[@]})) || continue
    log=$log_dir/$target-seeds-$expect.log
    if ! HYPE_FUZZ_EXPECT=$expect "$bin_dir/$target" -runs=1 "${files[@]}" >"$log" 2>&1; then
      echo "!!! $target: a seed that should be $expect is not (or crashed):"
      grep -E "^Running: |panicked|ERROR" "$log" | tail -n 5 || true
      tail -n 20 "$log"
      failed+=("$target (seeds)")
    fi
  done
  echo "   $target: ${#good[@]} accepted, ${#bad[@]} rejected"
done

echo "== fuzz: $seconds s per target, ${FUZZ_JOBS:=$(nproc)} at a time"
run() {
  local target=$1 rc=0
  mkdir -p "corpus/$target" "artifacts/$target"
  "$bin_dir/$target" "corpus/$target" "seeds/$target" \
    -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$target/" >"$log_dir/$target.log" 2>&1 || rc=$?
  echo "$rc" >"$log_dir/$target.rc"
}
running=0
for target in "${targets[@]}"; do
  if ((running >= FUZZ_JOBS)); then
    wait -n || true
    running=$((running - 1))
  fi
  run "$target" &
  running=$((running + 1))
done
wait || true
# The base pod files the base_pod target wrote (one per process).
rm -f "${TMPDIR:-/tmp}"/hype-fuzz-base-pod-*.yaml

printf '   %-18s %12s %10s  %s\n' target executions "exec/s" result
for target in "${targets[@]}"; do
  log=$log_dir/$target.log
  rc=$(cat "$log_dir/$target.rc" 2>/dev/null || echo "?")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  if [[ -z $execs ]]; then
    execs=$(sed -n 's/^#\([0-9]*\).*DONE.*/\1/p' "$log" | tail -n 1)
  fi
  if [[ $rc == 0 ]]; then
    printf '   %-18s %12s %10s  %s\n' "$target" "${execs:-?}" "${rate:-?}" ok
  else
    printf '   %-18s %12s %10s  %s\n' "$target" "${execs:-?}" "${rate:-?}" "FAILED (exit $rc)"
    failed+=("$target")
    echo "!!! $target failed; the end of its log:"
    tail -n 40 "$log"
    grep -h "Test unit written to" "$log" || true
  fi
done

if ((${#failed[@]})); then
  echo "!!! fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/)"
  exit 1
fi
echo "== fuzz: all ${#targets[@]} targets ran $seconds s without a finding"
