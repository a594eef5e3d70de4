"""The custom resources of deploy/kubernetes/ (KEDA, Prometheus Operator), which the Kubernetes API schemas do not
cover, against the fields their projects document: unknown keys are refused and required ones demanded."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from tests.deploy.test_kubernetes import CRD_KINDS, find, render


@pytest.fixture(scope="module", params=[(), ("litert",)], ids=["tensorflow", "litert"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def _closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


_STR, _INT, _ANY = {"type": "string"}, {"type": "integer"}, {}
_META = {"type": "object", "required": ["name"], "properties": {"name": _STR}}
_NAMED = {name: _ANY for name in ("labels", "matchLabels", "matchExpressions")}
# The fields each CRD kind documents, as JSON schemas: unknown keys are refused, required ones demanded.
# KEDA 2.15: https://keda.sh/docs/2.15/reference/scaledobject-spec/ , .../scalers/apache-kafka/ (trigger metadata and
# authentication parameters; the *FromEnv forms are read by KEDA's pkg/scalers/kafka_scaler.go, parseKafkaMetadata),
# .../concepts/authentication/ (TriggerAuthentication). Prometheus Operator (monitoring.coreos.com/v1):
# https://prometheus-operator.dev/docs/api-reference/api/ (ServiceMonitorSpec, Endpoint, RelabelConfig, PrometheusRuleSpec, RuleGroup, Rule).
_KAFKA_METADATA = _closed({name: _STR for name in (
    "bootstrapServers", "bootstrapServersFromEnv", "consumerGroup", "consumerGroupFromEnv", "topic", "topicFromEnv", "lagThreshold",
    "activationLagThreshold", "offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset", "excludePersistentLag",
    "limitToPartitionsWithLag", "version", "partitionLimitation", "sasl", "saslTokenProvider", "tls", "unsafeSsl", "awsRegion")})
_KAFKA_AUTH = {"enum": ["sasl", "saslTokenProvider", "username", "password", "keytab", "realm", "kerberosConfig", "kerberosServiceName",
                        "oauthTokenEndpointUri", "scopes", "oauthExtensions", "tls", "ca", "cert", "key", "keyPassword",
                        "awsRoleArn", "awsAccessKeyID", "awsSecretAccessKey"]}
_RELABEL = _closed({k: _ANY for k in ("sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action")})
_ENDPOINT = _closed({**{k: _ANY for k in (
    "port", "targetPort", "path", "scheme", "params", "interval", "scrapeTimeout", "tlsConfig", "bearerTokenSecret", "authorization",
    "honorLabels", "honorTimestamps", "trackTimestampsStaleness", "basicAuth", "oauth2", "metricRelabelings", "proxyUrl",
    "followRedirects", "enableHttp2", "filterRunning")}, "relabelings": {"type": "array", "items": _RELABEL}})
_RULE = _closed({"alert": _STR, "record": _STR, "expr": _STR, "for": _STR, "keep_firing_for": _STR, "labels": _ANY, "annotations": _ANY}, ("expr",))
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ScaledObject": _closed({
        "scaleTargetRef": _closed({"apiVersion": _STR, "kind": _STR, "name": _STR, "envSourceContainerName": _STR}, ("name",)),
        **{k: _INT for k in ("pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount", "minReplicaCount", "maxReplicaCount")},
        "fallback": _ANY,
        "advanced": _closed({"restoreToOriginalReplicaCount": _ANY, "horizontalPodAutoscalerConfig": _closed({"name": _STR, "behavior": _ANY}),
                             "scalingModifiers": _ANY}),
        "triggers": {"type": "array", "minItems": 1, "items": _closed({
            "type": {"const": "kafka"}, "name": _STR, "metadata": _KAFKA_METADATA, "metricType": _STR, "useCachedMetrics": _ANY,
            "authenticationRef": _closed({"name": _STR, "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]}}, ("name",))},
            ("type", "metadata"))},
    }, ("scaleTargetRef", "triggers")),
    "TriggerAuthentication": _closed({"secretTargetRef": {"type": "array", "items": _closed(
        {"parameter": _KAFKA_AUTH, "name": _STR, "key": _STR}, ("parameter", "name", "key"))}, "env": _ANY, "podIdentity": _ANY,
        "hashiCorpVault": _ANY, "azureKeyVault": _ANY}),
    "ServiceMonitor": _closed({"selector": _closed(_NAMED), "endpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
                               **{k: _ANY for k in ("jobLabel", "targetLabels", "podTargetLabels", "namespaceSelector", "sampleLimit",
                                                    "targetLimit", "attachMetadata", "scrapeClass")}}, ("selector", "endpoints")),
    "PrometheusRule": _closed({"groups": {"type": "array", "items": _closed(
        {"name": _STR, "interval": _STR, "limit": _INT, "query_offset": _STR, "labels": _ANY, "partial_response_strategy": _STR,
         "rules": {"type": "array", "items": _RULE}}, ("name", "rules"))}}, ("groups",)),
}
CRD_API = {"ScaledObject": "keda.sh/v1alpha1", "TriggerAuthentication": "keda.sh/v1alpha1",
           "ServiceMonitor": "monitoring.coreos.com/v1", "PrometheusRule": "monitoring.coreos.com/v1"}


def crd_problems(obj: dict[str, Any]) -> list[str]:
    """Why `obj` is not a valid object of its CRD kind, by the documented fields above (empty: valid)."""
    problems = [] if obj.get("apiVersion") == CRD_API[obj["kind"]] else [f"apiVersion {obj.get('apiVersion')}"]
    envelope = _closed({"apiVersion": _STR, "kind": _STR, "metadata": _META, "spec": CRD_SCHEMAS[obj["kind"]]}, ("metadata", "spec"))
    return problems + [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in jsonschema.Draft202012Validator(envelope).iter_errors(obj)]


def test_every_crd_manifest_has_only_documented_fields(rendered: list[dict[str, Any]]) -> None:
    crds = [o for o in rendered if o["kind"] in CRD_KINDS]
    assert {o["kind"] for o in crds} == CRD_KINDS
    for obj in crds:
        assert not crd_problems(obj), f"{obj['kind']} {obj['metadata']['name']}: {crd_problems(obj)}"
    scaled = copy.deepcopy(find(rendered, "ScaledObject"))
    scaled["spec"]["triggers"][0]["metadata"]["lagTreshold"] = "5"  # a typo KEDA would ignore silently
    scaled["spec"]["maxReplicas"] = 4
    assert len(crd_problems(scaled)) == 2
