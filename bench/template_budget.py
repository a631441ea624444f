"""The poison pill of issue 12, in-process: a 300 kB value rendered 1000 times by one
`template.data` entry, without (`before`) and with (`after`) the controller's render budget.

Usage: python bench/template_budget.py before|after   (figures in docs/benchmarks.md)
"""

import resource
import sys
import time

from sealkit.templates import TemplateError, build_secret_data, render_budget


def main(mode: str) -> None:
    ctx = {"v": b"p" * 300_000}
    template = {"out": "{{ .v }}" * 1000}
    cpu = time.process_time()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        if mode == "after":
            with render_budget(1 << 20, 5.0):
                build_secret_data(ctx, template)
        else:
            build_secret_data(ctx, template)
        result = "rendered"
    except TemplateError as exc:
        result = exc.message
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    print(f"{mode}: {result[:80]}; cpu {time.process_time() - cpu:.2f}s; maxrss +{grown:.0f} MB")


if __name__ == "__main__":
    main(sys.argv[1])
