"""The churn demo: its dataset spec (``churn_dataset.toml``) and its feature function.

Nothing outside this package and the sample generator (``include/ml/sample_data.py``) names a
churn column: the rest of the loop reads the dataset spec.
"""
