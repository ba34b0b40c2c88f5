"""What the data tool writes: converters from text, Parquet, libsvm, ratings and hashed
categoricals into HDF5 shards, synthetic data and scikit-learn's examples (`python -m
mpireg.data ...`, tool.py). Never imported by a fit: training reads shards through mpireg.data.
"""
