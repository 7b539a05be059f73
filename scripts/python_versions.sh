#!/usr/bin/env bash
# The fast tests on every Python the package supports beyond the main one (.venv, Python 3.11):
# each version gets its own venv (.venv-py3.N), installs the package with constraints.txt and
# runs the tests below.  Interpreters come from pyenv (`pyenv root`/versions/3.N.*) or PATH
# (python3.N); a version that is not installed is skipped with the reason.  On Pythons other
# than 3.11 pip downloads torch from PyPI (about 1 GB a version, a few minutes the first time;
# the venvs are kept, so later runs reinstall nothing); torch's CUDA libraries, the same files for
# every Python, are hard-linked from .venv (scripts/share_wheels.py): about 2.5 GB a venv, not 6.
#   SD_DARTS_PYTHONS="3.12 3.13"   the versions to try (pyproject's classifiers list the same)
#   SD_DARTS_SKIP_PYTHONS=1        skip this step (scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSIONS=${SD_DARTS_PYTHONS:-3.12 3.13}
# The library's math, its settings and files, the CLI and the report: seconds each, no training.
FAST_TESTS=(tests/cli/test_packaging.py tests/search/test_distill.py tests/spaces/test_genotypes.py tests/experiment/test_experiment.py
            tests/report/test_spec.py tests/evaluation/test_stats.py tests/search/test_architect.py)
find_python() {
    local v=$1 root
    if command -v pyenv >/dev/null 2>&1; then root=$(pyenv root); else root=${PYENV_ROOT:-$HOME/.pyenv}; fi
    for p in "$root"/versions/"$v".*/bin/python "$(command -v "python$v" 2>/dev/null || true)"; do
        if [ -n "$p" ] && [ -x "$p" ]; then echo "$p"; return 0; fi
    done
    return 1
}
tried=0
for v in $VERSIONS; do
    if ! py=$(find_python "$v"); then
        echo "python_versions: Python $v is not installed (pyenv install $v), skipped"
        continue
    fi
    venv=".venv-py$v"
    stamp="$venv/.sd-darts-setup"
    want=$(cat pyproject.toml constraints.txt "$0" scripts/share_wheels.py | sha256sum | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "python_versions: setting up $venv with $("$py" --version) (torch from PyPI: minutes the first time)"
        "$py" -m venv "$venv"
        .venv/bin/python scripts/share_wheels.py "$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
            "$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
        # No wheel cache: the venv is kept, so a cached copy would only double the disk used.
        PIP_NO_CACHE_DIR=1 "$venv/bin/python" -m pip install -q torch==2.14.1 torchvision==0.29.1 2> >(grep -v "^WARNING: Location" >&2)
        PIP_NO_CACHE_DIR=1 "$venv/bin/python" -m pip install -q -c constraints.txt -e ".[dev,pipeline]" 2> >(grep -v "^WARNING: Location" >&2)
        echo "$want" > "$stamp"
    fi
    echo "python_versions: $("$venv/bin/python" --version): fast tests"
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$venv/bin/python" -m pytest -q -p no:cacheprovider "${FAST_TESTS[@]}"
    tried=$((tried + 1))
done
echo "python_versions: fast tests passed on $tried of $(wc -w <<<"$VERSIONS") extra Python version(s)"
