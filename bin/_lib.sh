# Shared set-up steps for bin/run, bin/test and .ci/run (sourced, not executed).
# Idempotent: each step does nothing when its work is already done.

MF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MF_VENV="${MF_VENV:-$MF_ROOT/.venv}"
MF_PY="$MF_VENV/bin/python"

mf_log() { printf '\033[1;35m[marrow-find]\033[0m %s\n' "$*" >&2; }

# ensure_venv [dev]: make the virtualenv and install the lock file when it changed.
# requirements.lock / requirements-dev.lock (made by bin/lock from the ranges in
# requirements*.txt) pin every package with its hashes: pip checks each file it installs.
ensure_venv() {
  local want="requirements.lock"
  [ "${1:-}" = "dev" ] && want="requirements-dev.lock"
  if [ ! -x "$MF_PY" ]; then
    mf_log "creating virtualenv in $MF_VENV"
    "${PYTHON:-python3}" -m venv "$MF_VENV"
  fi
  local stamp="$MF_VENV/.installed-$(basename "$want" .lock)"
  local digest
  digest="$(sha256sum < "$MF_ROOT/$want" | cut -c1-16)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    mf_log "installing $want (first time: torch + torchvision, a few minutes)"
    "$MF_PY" -m pip install --disable-pip-version-check -q --require-hashes -r "$MF_ROOT/$want"
    echo "$digest" > "$stamp"
  fi
}

# ensure_system_packages: Chromium (browser tests) and poppler-utils (PDF rasterising).
# Installs them with apt-get when running as root; otherwise says what is missing.
ensure_system_packages() {
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium chromium-driver)
  command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    mf_log "installing ${missing[*]} with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    mf_log "missing system packages: ${missing[*]} (browser/PDF tests will skip; install them with your package manager)"
  fi
}
