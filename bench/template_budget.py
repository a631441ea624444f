"""The poison pill of issue 12, in-process: a 300 kB value rendered 1000 times by one
`template.data` entry, without (`before`) and with (`after`) the controller's render budget.

Usage: python bench/template_budget.py before|after   (figures in docs/benchmarks.md)
"""

import resource
import sys
import time

mode = sys.argv[1]
from sealkit.templates import TemplateError, build_secret_data, render_budget

ctx = {"v": b"p" * 300_000}
tmpl = {"out": "{{ .v }}" * 1000}
t = time.process_time()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    if mode == "after":
        with render_budget(1 << 20, 5.0):
            build_secret_data(ctx, tmpl)
    else:
        build_secret_data(ctx, tmpl)
    res = "rendered"
except TemplateError as e:
    res = e.message
print(mode, res[:80], f"cpu {time.process_time()-t:.2f}s", f"maxrss +{(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss-base)/1024:.0f} MB")
