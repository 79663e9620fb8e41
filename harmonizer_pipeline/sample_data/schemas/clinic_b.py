"""The pandera schema gating clinic B's exports, as a DataFrameModel (harmonizer.yaml names it
by import path: harmonizer_pipeline.sample_data.schemas.clinic_b:ClinicBPatients)."""

import pandera.pandas as pa
from pandera.engines.pandas_engine import DateTime
from pandera.typing import Series


class ClinicBPatients(pa.DataFrameModel):
    id: Series[str] = pa.Field(unique=True, str_matches=r"^B-\d{3}$")
    name: Series[str]
    # Clinic B writes day-first dates.
    dob: Series[DateTime] = pa.Field(dtype_kwargs={"to_datetime_kwargs": {"format": "%d.%m.%Y"}})
    sex: Series[str] = pa.Field(isin=["M", "F", "Male", "Female", "1", "2"])
    town: Series[str]

    class Config:
        coerce = True
        strict = True
