"""Spark's GeneralizedLinearRegression (IRLS), local[2], weights and offsets columns."""
import numpy as np
from glm_common import POWER, arguments, load, save

from pyspark.ml.feature import VectorAssembler
from pyspark.ml.regression import GeneralizedLinearRegression
from pyspark.sql import SparkSession

directory, family, out = arguments()
X, y, w, offset = load(directory)
spark = (SparkSession.builder.master("local[2]").config("spark.driver.memory", "8g")
         .config("spark.ui.enabled", "false").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
import pandas as pd  # noqa: E402

names = [f"x{j}" for j in range(X.shape[1])]
frame = pd.DataFrame(X.astype(np.float64), columns=names)
frame["y"], frame["w"], frame["offset"] = y, w, offset
data = VectorAssembler(inputCols=names, outputCol="features").transform(spark.createDataFrame(frame))
extra = {"variancePower": POWER, "linkPower": 0.0} if family == "tweedie" else {"link": "log"}
glr = GeneralizedLinearRegression(family=family, labelCol="y", weightCol="w", offsetCol="offset",
                                  regParam=0.0, tol=1e-8, maxIter=100, **extra)
model = glr.fit(data)
save(out, model.intercept, model.coefficients.toArray())
spark.stop()
