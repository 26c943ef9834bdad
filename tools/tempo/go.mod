// Builds Tempo as a tool dependency, carrying the replace directives of its go.mod.
// Tempo's module path has no /v2 suffix, so releases are only reachable as
// pseudo-versions; this is the newest commit the module proxy serves here (2025-05-29).
module otel-distro/tools/tempo

go 1.26.5

require github.com/grafana/tempo v1.5.1-0.20250529124718-87c2dc380cec

tool github.com/grafana/tempo/cmd/tempo

replace (
	k8s.io/api => k8s.io/api v0.25.0
	k8s.io/client-go => k8s.io/client-go v0.25.0
)

replace github.com/hashicorp/memberlist => github.com/grafana/memberlist v0.3.1-0.20220708130638-bd88e10a3d91
