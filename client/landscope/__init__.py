"""landscope: the Python SDK of the landscope loss-landscape service.

Example:
    >>> import landscope
    >>> client = landscope.Client()  # LANDSCOPE_URL, LANDSCOPE_API_KEY  # doctest: +SKIP
    >>> request = landscope.JobRequest(
    ...     kind="evaluate",
    ...     model=landscope.model(landscope.mlp(3, [8], 1, "tanh"), init_seed=0),
    ...     data=landscope.synthetic_data("teacher_student", num_samples=64, seed=0),
    ... )
    >>> result = client.jobs.result(client.jobs.submit(request), progress=True)  # doctest: +SKIP
"""

from landscope import webhooks
from landscope._async import AsyncClient
from landscope._blobs import Blobs
from landscope._client import Client
from landscope._events import JobEvent, Webhooks
from landscope._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    InvalidResponseError,
    JobFailedError,
    LandscopeError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    WaitTimeout,
    status_error_class,
)
from landscope._http import RetryPolicy
from landscope._jobs import Jobs
from landscope._torch import state_dict_to_safetensors
from landscope._version import __version__
from landscope.from_module import UnsupportedModuleError, from_module
from landscope.kinds.evaluate import EvaluateOptions, EvaluateResult, PerSampleLoss
from landscope.spec import (
    JobRequest,
    ModelSpec,
    blob_data,
    inline_data,
    mlp,
    model,
    synthetic_data,
)
from landscope.types import (
    TERMINAL_STATUSES,
    ArtifactInfo,
    Blob,
    Job,
    JobError,
    JobStatus,
    Page,
    Progress,
)

__all__ = [
    "TERMINAL_STATUSES",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "ArtifactInfo",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Blob",
    "Blobs",
    "Client",
    "ConflictError",
    "EvaluateOptions",
    "EvaluateResult",
    "InternalServerError",
    "InvalidResponseError",
    "Job",
    "JobError",
    "JobEvent",
    "JobFailedError",
    "JobRequest",
    "JobStatus",
    "Jobs",
    "LandscopeError",
    "ModelSpec",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PerSampleLoss",
    "PermissionDeniedError",
    "Progress",
    "RateLimitError",
    "RetryPolicy",
    "UnprocessableEntityError",
    "UnsupportedModuleError",
    "WaitTimeout",
    "Webhooks",
    "__version__",
    "blob_data",
    "from_module",
    "inline_data",
    "mlp",
    "model",
    "state_dict_to_safetensors",
    "status_error_class",
    "synthetic_data",
    "webhooks",
]
