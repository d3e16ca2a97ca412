"""The broker connection: an aiomqtt client from the ``[mqtt]`` configuration.

TLS from ``[mqtt.tls]`` (a private CA, an optional client certificate), credentials
from the configuration's secret, and the last will that turns the retained status topic
to ``offline`` when the gateway disappears. The session is clean: durability is the
outbox's job, not the broker session's.
"""

from __future__ import annotations

import ssl

import aiomqtt

from tagsweep.config.schema import MqttSection
from tagsweep.daemon.mqtt.topics import status_payload


def tls_context(mqtt: MqttSection) -> ssl.SSLContext | None:
    """An SSL context from ``[mqtt.tls]``: private CA, optional client certificate."""
    if mqtt.tls is None:
        return None
    ca = str(mqtt.tls.ca_file) if mqtt.tls.ca_file else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if mqtt.tls.cert_file is not None and mqtt.tls.key_file is not None:
        context.load_cert_chain(str(mqtt.tls.cert_file), str(mqtt.tls.key_file))
    if mqtt.tls.insecure:
        context.check_hostname = False  # the certificate chain is still verified
    return context


def broker_client(
    mqtt: MqttSection,
    *,
    site: str,
    gateway: str,
    status_topic: str,
    max_inflight: int,
    timeout_s: float,
) -> aiomqtt.Client:
    """A client for one connection to the broker, with ``max_inflight`` unacked publishes."""
    password = mqtt.password.get_secret_value() if mqtt.password is not None else None
    client = aiomqtt.Client(
        mqtt.host,
        mqtt.port,
        username=mqtt.username,
        password=password,
        identifier=mqtt.client_id or f"tagsweep-{site}-{gateway}",
        clean_session=True,  # durability is the outbox's job, not the broker session's
        keepalive=mqtt.keepalive_s,
        will=aiomqtt.Will(
            status_topic,
            status_payload("offline", gateway=gateway, site=site),
            qos=1,
            retain=mqtt.retain_status,
        ),
        max_inflight_messages=max_inflight,
        tls_context=tls_context(mqtt),
        tls_insecure=bool(mqtt.tls and mqtt.tls.insecure) or None,
        timeout=timeout_s,
    )
    # A whole batch in flight is normal here, not the overload aiomqtt warns about.
    client.pending_calls_threshold = max_inflight + 10
    return client
