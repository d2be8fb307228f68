# Shared by scripts/demo and scripts/test (sourced): Debian packages and the Python environment.

# Install the given Debian packages with apt-get when missing (needs root or sudo).
ensure_debs() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  echo "installing Debian packages: ${missing[*]}"
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Create .venv with python3 (3.11+) and install tachiai into it, with the extras given ("" or "[test]").
ensure_venv() {
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "tachiai needs Python 3.11 or newer as python3 (found $(python3 --version 2>&1))" >&2
    exit 1
  }
  # Debian's own python3 creates virtual environments only with python3-venv (ensurepip).
  if [ ! -x .venv/bin/python ] && ! python3 -c 'import ensurepip' 2>/dev/null; then
    ensure_debs python3-venv
  fi
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".$1"
}
