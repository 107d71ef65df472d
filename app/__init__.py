"""The accounts service: FlexMeasures' v3 Accounts API as an async FastAPI microservice."""

__version__ = "0.1.0"
#: The FlexMeasures release whose Accounts API this service matches (SPEC §3).
FLEXMEASURES_VERSION = "1.0.1"
