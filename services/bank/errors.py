"""The bank's error codes: one definition for the server, its client and the worker.

Every error response has the body ``{"error": {"code": ..., "message": ...}}``;
the code is for programs, the message is for people.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    UNKNOWN_ACCOUNT = "unknown_account"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_REQUEST = "invalid_request"
    MISSING_IDEMPOTENCY_KEY = "missing_idempotency_key"
    IDEMPOTENCY_KEY_CONFLICT = "idempotency_key_conflict"
    KEY_VOIDED = "key_voided"
    NOT_FOUND = "not_found"
    INJECTED_FAULT = "injected_fault"
    BANK_DOWN = "bank_down"
    UNAUTHORIZED = "unauthorized"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.UNKNOWN_ACCOUNT: 404,
    ErrorCode.INSUFFICIENT_FUNDS: 409,
    ErrorCode.INVALID_AMOUNT: 422,
    ErrorCode.INVALID_REQUEST: 422,
    ErrorCode.MISSING_IDEMPOTENCY_KEY: 400,
    # The IETF idempotency-key draft answers a reused key with another payload with 422.
    ErrorCode.IDEMPOTENCY_KEY_CONFLICT: 422,
    # Like a conflict, but with the ledger's state (the key was voided), not the payload.
    ErrorCode.KEY_VOIDED: 409,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.INJECTED_FAULT: 503,
    ErrorCode.BANK_DOWN: 503,
    # The fault switch of an exposed lab, changed without its control token.
    ErrorCode.UNAUTHORIZED: 401,
}

# Errors that no retry can fix: the same request will be refused the same way.
# Everything else (injected faults, a bank that is down, timeouts) is transient.
PERMANENT: frozenset[ErrorCode] = frozenset(
    {
        ErrorCode.UNKNOWN_ACCOUNT,
        ErrorCode.INSUFFICIENT_FUNDS,
        ErrorCode.INVALID_AMOUNT,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.MISSING_IDEMPOTENCY_KEY,
        ErrorCode.IDEMPOTENCY_KEY_CONFLICT,
        ErrorCode.KEY_VOIDED,
        ErrorCode.NOT_FOUND,
        ErrorCode.UNAUTHORIZED,
    }
)
