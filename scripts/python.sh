# The Python that the scripts install packages into and run (sourced by setup.sh, test.sh, demo.sh, ...):
#   $PYTHON when set; else .venv/bin/python when setup.sh made one; else python3.
# Debian 12's own python3 refuses `pip install` (PEP 668: "externally-managed-environment"), so on it
# setup.sh makes .venv (python3 -m venv) and installs torch there; every script then finds it here.
# Run the Python tools the same way: .venv/bin/python scripts/plot_metrics.py RUN, or `. .venv/bin/activate`.

siglip2_python() {
  if [ -n "${PYTHON:-}" ]; then
    echo "$PYTHON"
  elif [ -x "$PWD/.venv/bin/python" ]; then
    echo "$PWD/.venv/bin/python"
  else
    echo python3
  fi
}

# True for a Python outside any virtual environment whose packages the system manages (PEP 668).
siglip2_python_externally_managed() {
  "$1" -c 'import os, sys, sysconfig
sys.exit(0 if sys.prefix == sys.base_prefix and
         os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'
}
