import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sre4ai_web.settings")
application = get_wsgi_application()
from evals.evaluators import grounding  # noqa: E402 - the apps are ready only now

# Import every view now rather than on the first requests and load the grounding model a guard call may need, then
# take everything loaded so far (Django, the apps, numpy, scipy, plotly: it lives as long as the process) out of
# the cyclic garbage collector. Otherwise each full
# collection walks all of it: ~80 ms of a triage page that builds 4,000 events (docs/benchmarks.md §8).
get_resolver().url_patterns  # noqa: B018 - evaluated for its side effect, the imports
grounding.warm()
gc.freeze()
