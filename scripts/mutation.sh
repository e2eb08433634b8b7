#!/usr/bin/env bash
# Mutation testing: mutmut changes the code one small edit at a time and reruns the fast tests that reach it; a
# mutant no test notices ("survivor") is a behaviour the tests do not pin down.
#
#   scripts/mutation.sh [--name NAME] [--tests "PYTEST ARGS"] [--workers N] [PATH ...]
#
# PATH: modules or folders under nnunet_25d/ (default: the set in pyproject.toml [tool.mutmut] only_mutate).
# --tests: the tests mutmut runs (default: every fast test, `tests -m "not integration"`); restrict them for
#          modules whose full run would take too long, e.g. --tests "tests/geometry/test_slab.py tests/geometry/test_views.py".
# --name: names the work folder mutants/NAME and the report benchmarks/results/mutation_NAME.md (default: the
#          module's name for one PATH, "default" without PATH, "selection" otherwise).
# --workers: mutants tested at once, one thread each (default 1: the cores are shared; up to the cores when the
#          machine is yours alone). Runs from different engineers queue on a lock.
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
fail() { echo "mutation.sh: $*" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

name="" tests="" workers=1 paths=()
while (($#)); do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --name) (($# > 1)) || fail "--name needs a value"; name=$2; shift 2 ;;
        --tests) (($# > 1)) || fail "--tests needs a value"; tests=$2; shift 2 ;;
        --workers) (($# > 1)) || fail "--workers needs a value"; workers=$2; shift 2 ;;
        -*) fail "unknown option $1 (see --help)" ;;
        *) paths+=("${1%/}"); shift ;;
    esac
done

command -v mutmut >/dev/null || fail "mutmut is not installed: run pip install -e \".[test]\""
patterns=()
for path in "${paths[@]}"; do
    [[ $path == nnunet_25d/* && -e $path ]] || \
        fail "$path is not a module or folder under nnunet_25d/ (give paths from the repository root)"
    if [[ -d $path ]]; then patterns+=("$path/*"); else patterns+=("$path"); fi
done
if [[ -z $name ]]; then
    case ${#paths[@]} in
        0) name=default ;;
        1) name=$(basename "${paths[0]}" .py) ;;
        *) name=selection ;;
    esac
fi
[[ $name =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || fail "--name $name: use letters, digits, _ . - (not first) only"
[[ $workers =~ ^[1-9][0-9]*$ ]] || fail "--workers $workers: give a whole number of at least 1"

mkdir -p mutants
exec 9>mutants/.lock
if ! flock -n 9; then
    echo "another mutation run is going on (one at a time on this machine); waiting for it to finish..."
    flock 9
fi

# mutmut works in ./mutants of its current folder and reads ./pyproject.toml: give each run its own folder,
# configured for its modules, that sees the repository's package and tests through links
work=mutants/$name
rm -rf "$work"
mkdir -p "$work"
ln -s ../../nnunet_25d "$work/nnunet_25d"
ln -s ../../tests "$work/tests"
python scripts/mutation_support.py config --tests="$tests" "$work" "${patterns[@]}"

echo "mutmut run in $work (log: $work/mutmut.log)"
start=$(date +%s)
if ! (cd "$work" && OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 mutmut run --max-children "$workers") 2>&1 |
    tee "$work/mutmut.log"
then
    fail "mutmut stopped (see $work/mutmut.log); if a test outside your change fails, choose tests with --tests"
fi
python scripts/mutation_support.py report "$work" "benchmarks/results/mutation_$name.md" $(($(date +%s) - start)) \
    --workers "$workers"
