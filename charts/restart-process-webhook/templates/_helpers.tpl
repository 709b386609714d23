{{/* Names and labels shared by every template. */}}

{{- define "rpw.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rpw.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rpw.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rpw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rpw.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "rpw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "rpw.tlsSecret" -}}
{{- if eq .Values.tls.mode "secret" -}}
{{- required "tls.secret.name is required when tls.mode is secret" .Values.tls.secret.name -}}
{{- else -}}
{{- printf "%s-tls" (include "rpw.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "rpw.image" -}}
{{- printf "%s:%s" .repository (default .appVersion .tag) -}}
{{- end -}}

{{/* The opt-in test, in CEL; must equal webhook/registration.py opt_in_expression (a test checks). */}}
{{- define "rpw.optInExpression" -}}
{{- $p := .Values.annotationPrefix -}}
{{- printf "has(object.metadata.annotations) && !('%s/injected' in object.metadata.annotations) && (('%s/enabled' in object.metadata.annotations && object.metadata.annotations['%s/enabled'] != 'false') || '%s/containers' in object.metadata.annotations || '%s/images' in object.metadata.annotations)" $p $p $p $p $p -}}
{{- end -}}

{{- define "rpw.needsApi" -}}
{{- or (eq .Values.tls.mode "self-managed") (and .Values.registry.lookup (or .Values.registry.credentials .Values.registry.discoverLocalRegistry)) (ne .Values.wrapper.delivery "init-container") -}}
{{- end -}}
