{{/* Names and labels shared by every template. */}}

{{- define "modelship.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* release-chart, or just the release when it already contains the chart name. */}}
{{- define "modelship.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "modelship.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelship.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelship.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "modelship.labels" -}}
helm.sh/chart: {{ include "modelship.chart" . }}
{{ include "modelship.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelship
{{- end -}}

{{- define "modelship.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modelship.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* An image reference from {repository, tag, digest}: the digest wins, the tag defaults to appVersion.
     Call with (list .Values.x.image .Chart.AppVersion). */}}
{{- define "modelship.image" -}}
{{- $image := index . 0 -}}
{{- $appVersion := index . 1 -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default $appVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the webhook's token: the one named in values, or the one the chart generates. */}}
{{- define "modelship.webhookTokenSecret" -}}
{{- default (printf "%s-webhook-token" (include "modelship.fullname" .)) .Values.webhook.tokenSecret.name -}}
{{- end -}}

{{- define "modelship.leaseName" -}}
{{- default (include "modelship.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{/* The namespaces that get the operator's Role (and the created PVC): the watched ones, or the release namespace. */}}
{{- define "modelship.workNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- toJson .Values.watchNamespaces -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{- define "modelship.artifactPvc" -}}
{{- if .Values.artifacts.pvc.existingClaim -}}
{{- .Values.artifacts.pvc.existingClaim -}}
{{- else if .Values.artifacts.pvc.create -}}
{{- printf "%s-artifacts" (include "modelship.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* A rule list from files/rbac.yaml without its `why`s. Call with the list. */}}
{{- define "modelship.rules" -}}
{{- range . }}
- apiGroups: {{ toJson .apiGroups }}
  resources: {{ toJson .resources }}
  verbs: {{ toJson .verbs }}
{{- end }}
{{- end -}}

{{/* Checks of combinations the schema cannot express; `fail` stops the render with the reason. */}}
{{- define "modelship.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicas > 1 needs leaderElection.enabled=true: two operators would act at once" -}}
{{- end -}}
{{- if and (or .Values.artifacts.pvc.create .Values.artifacts.pvc.existingClaim) (not (hasPrefix "file://" .Values.artifacts.store)) -}}
{{- fail "artifacts.pvc is set: artifacts.store must be a file:// URI under artifacts.pvc.mountPath" -}}
{{- end -}}
{{- if and .Values.prometheus.bearerTokenSecret.name (not .Values.prometheus.allowedUrls) -}}
{{- fail "prometheus.bearerTokenSecret is set: list the Prometheus base URLs the token may be sent to in prometheus.allowedUrls" -}}
{{- end -}}
{{- end -}}
