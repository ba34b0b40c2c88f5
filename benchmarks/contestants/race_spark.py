"""Spark MLlib on local[2]: LogisticRegression (L-BFGS; multinomial for softmax) /
LinearRegression(solver normal). Reads the rows from Parquet, Spark's own format (written, like
mpireg's shards, before the clock starts): X.npy's path with .parquet in place of .npy."""

from common import arguments, save

x_path, y_path, task, out = arguments()
from pyspark.ml.classification import LogisticRegression  # noqa: E402
from pyspark.ml.feature import VectorAssembler  # noqa: E402
from pyspark.ml.regression import LinearRegression  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

spark = (SparkSession.builder.master("local[2]").config("spark.driver.memory", "12g")
         .config("spark.ui.enabled", "false").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
frame = spark.read.parquet(x_path[:-len(".npy")] + ".parquet")
features = [c for c in frame.columns if c != "label"]
rows = VectorAssembler(inputCols=features, outputCol="features").transform(frame).select("features", "label").cache()
if task == "linear":
    m = LinearRegression(solver="normal", regParam=0.0, standardization=False).fit(rows)
    save(out, m.coefficients.toArray(), m.intercept)
else:
    family = "binomial" if task == "logistic" else "multinomial"
    m = LogisticRegression(family=family, regParam=0.0, tol=1e-9, maxIter=10000, standardization=False).fit(rows)
    if task == "logistic":
        save(out, m.coefficients.toArray(), m.intercept)
    else:
        save(out, m.coefficientMatrix.toArray(), m.interceptVector.toArray())
spark.stop()
