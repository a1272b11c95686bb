"""TikTok Shop signatures against the published vectors (request ``sign`` and webhook header)."""

from __future__ import annotations

import pytest

from connectors.tiktok_shop.signing import request_sign, webhook_signature

CIPHER_QUERY = [
    ("app_key", "68xu9ks5p4i8"),
    ("shop_cipher", "ROW_xkMbgAAAeVAQra0eZWebFQq5aIK"),
    ("timestamp", "1696909648"),
]
PUT_BODY = b'{"event_type":"PACKAGE_UPDATE","address":"https://partner.tiktokshop.com"}'
WEBHOOK_BODY = (
    b'{"type":1,"tts_notification_id":"7380066284010030890","shop_id":"7495540735365777507",'
    b'"timestamp":1718305585,"data":{"is_on_hold_order":true,"order_id":"576653688135258178",'
    b'"order_status":"UNPAID","update_time":1718305585}}'
)


@pytest.mark.parametrize(
    ("secret", "path", "query", "body", "expected"),
    [
        (
            "app_secret",
            "/test-api",
            [("foo", "bar")],
            b"",
            "d3cb7fe11ecae942802ceeca67e7cf10120cc12f1517d45fbc1c8cfe5413c80f",
        ),
        (
            "e59af819cc",
            "/event/202309/webhooks",
            CIPHER_QUERY,
            b"",
            "ed58e1b5e59865c22a7b828c1cab65007441f43cc91a6cb2f2cdc638e0995a37",
        ),
        (
            "e59af819cc",
            "/event/202309/webhooks",
            CIPHER_QUERY,
            PUT_BODY,
            "701dd6deb2389fe4c469b89bd37fc56f96a6da6afeb4d01c9077a65169752fa7",
        ),
        (
            "e59af819cc",
            "/authorization/202309/shops",
            [("app_key", "29a39d"), ("timestamp", "1623812664")],
            b"",
            "b596b73e0cc6de07ac26f036364178ab16b0a907af13d43f0a0cd2345f582dc8",
        ),
    ],
    ids=["sdk-test-api", "get-webhooks", "put-webhooks-body", "official-shops"],
)
def test_published_request_vectors(
    secret: str, path: str, query: list[tuple[str, str]], body: bytes, expected: str
) -> None:
    """Each published request vector yields its published sign."""
    assert request_sign(secret, path, query, body) == expected


def test_sign_and_access_token_params_are_not_signed() -> None:
    """Adding sign or access_token to the query of vector #2, in any order, leaves the sign unchanged."""
    noisy = [("sign", "whatever"), *reversed(CIPHER_QUERY), ("access_token", "TTP_x")]
    assert request_sign("e59af819cc", "/event/202309/webhooks", noisy) == (
        "ed58e1b5e59865c22a7b828c1cab65007441f43cc91a6cb2f2cdc638e0995a37"
    )


def test_body_bytes_are_signed_as_sent() -> None:
    """The same JSON with another key order signs differently: the raw bytes are signed."""
    reordered = b'{"address":"https://partner.tiktokshop.com","event_type":"PACKAGE_UPDATE"}'
    sign = request_sign("e59af819cc", "/event/202309/webhooks", CIPHER_QUERY, reordered)
    assert sign != "701dd6deb2389fe4c469b89bd37fc56f96a6da6afeb4d01c9077a65169752fa7"


def test_multipart_bodies_are_left_out_of_the_sign() -> None:
    """With multipart/form-data the body is not signed, so the sign equals the bodiless one."""
    sign = request_sign(
        "e59af819cc", "/event/202309/webhooks", CIPHER_QUERY, b"--x\r\n", "multipart/form-data; boundary=x"
    )
    assert sign == "ed58e1b5e59865c22a7b828c1cab65007441f43cc91a6cb2f2cdc638e0995a37"


def test_published_webhook_vector() -> None:
    """The published webhook vector yields its published Authorization value."""
    assert webhook_signature("abcdef", "123", WEBHOOK_BODY) == (
        "5dec0f11ec2f6783b8deee53c9ffbf8d024302f7c7e7fa55a35d17629031ac05"
    )
