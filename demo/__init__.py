"""The churn demo: its dataset spec (``churn_dataset.toml``) and its feature function.

Nothing outside this package and the sample generator (``demo/sample_data.py``) names a
churn column: the rest of the loop reads the dataset spec.
"""

from pathlib import Path

# where `make demo` keeps its data and settings; `make airflow-demo` shows them in the UI
DEMO_STATE = Path(__file__).resolve().parent.parent / ".mlops-demo"
DEMO_CONFIG = DEMO_STATE / "astro.toml"
# the demo's endpoint port: the project's settings (astro.toml) serve on 8765
DEMO_ENDPOINT_PORT = 8766
