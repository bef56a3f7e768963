"""Capture service: the one door every lead comes through — gRPC for frontends and ERP systems, and
public HTTP for web forms, QR codes, webhooks and the tracking beacon."""
import time
import uuid
from io import BytesIO
from urllib.parse import urlsplit

from leadflow.capture.v1 import capture_pb2, capture_pb2_grpc
from leadflow.common.v1 import common_pb2
from nameko import config
from werkzeug.wrappers import Request, Response

from services.capture import activity as activities
from services.capture import cards, domain, file_import, forms, mappers, matching, webhooks
from services.capture.dependencies import CaptureStore
from services.common import metrics, webhook_signing
from services.common.auth import Role, can_see_lead
from services.common.compute import off_the_hub
from services.common.errors import FieldViolation, InvalidArgument, NotFound, Unauthenticated, Validator
from services.common.events import utcnow
from services.common.import_progress import ImportProgressProvider, checked_import_id, tracked
from services.common.http import (UnsupportedMediaType, client_address, json_object, json_response, public_http,
                                  read_body)
from services.common.mappers import (enum_label, from_timestamp, import_progress_to_proto, next_page_token,
                                     page_window)
from services.common.messaging import event_handler
from services.common.rate_limit import RateLimits
from services.common.rpc import LeadflowGrpc
from services.common.service_base import LeadflowService
from services.common.streams import stream_header

capture_rpc = LeadflowGrpc.implementing(capture_pb2_grpc.CaptureServiceStub)
SUBMITTERS = {Role.ADMIN, Role.MANAGER, Role.INTEGRATION}
EDITORS = {Role.ADMIN, Role.MANAGER}
MAX_BATCH = 500
# The anonymous visitor id the beacon hands out, read back when the visitor posts a form.
VISITOR_COOKIE = "lf_vid"
VISITOR_COOKIE_SECONDS = 365 * 24 * 3600
# A 1x1 transparent GIF: what a tracking pixel answers.
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


def _count(submission) -> None:
    if submission.created:
        metrics.LEADS_CAPTURED.labels(metrics.source_label(submission.lead.source)).inc()
    elif submission.merged and not submission.unchanged:
        metrics.LEADS_MERGED.inc()


def _public_base() -> str:
    """Where the world reaches capture's public HTTP (form links, QR codes, cookie security)."""
    return config["CAPTURE_PUBLIC_URL"].rstrip("/")


class CaptureService(LeadflowService):
    name = "capture"
    store = CaptureStore()
    rate_limits = RateLimits()
    imports = ImportProgressProvider()

    # ---- gRPC: leads ---------------------------------------------------------------------------

    @capture_rpc(roles=SUBMITTERS)
    def SubmitLead(self, request, context):
        submission = self._submit(request, self.caller.id)
        return capture_pb2.SubmitLeadResponse(lead=mappers.lead_to_proto(submission.lead),
                                              created=submission.created, merged=submission.merged)

    @capture_rpc(roles=SUBMITTERS)
    def SubmitLeads(self, request, context):
        if len(request.items) > MAX_BATCH:
            raise InvalidArgument([FieldViolation("items", f"at most {MAX_BATCH} items per call")])
        response = capture_pb2.SubmitLeadsResponse()
        for index, item in enumerate(request.items):
            try:
                submission = self._submit(item, self.caller.id, prefix=f"items[{index}].")
            except InvalidArgument as exc:
                response.rejected += 1
                response.results.add(index=index, violations=[
                    common_pb2.FieldViolation(field=v.field, description=v.description) for v in exc.violations])
                continue
            response.created += submission.created
            response.merged += submission.merged
            response.results.add(index=index, lead=mappers.lead_to_proto(submission.lead),
                                 created=submission.created, merged=submission.merged)
        return response

    def _submit(self, request, captured_by: str, prefix: str = ""):
        key = domain.validate_idempotency_key(request.idempotency_key, f"{prefix}idempotency_key")
        lead = domain.normalise_lead(mappers.lead_input_from_proto(request.lead), str(uuid.uuid4()), utcnow(),
                                     prefix=f"{prefix}lead")
        submission = self.store.leads.submit(lead, key, captured_by=captured_by)
        _count(submission)
        return submission

    @capture_rpc
    def GetLead(self, request, context):
        return capture_pb2.GetLeadResponse(lead=mappers.lead_to_proto(self._visible_lead(request.lead_id)))

    def _visible_lead(self, lead_id: str):
        """A rep reads only the leads routed to them, a manager their team's and the not yet routed
        ones; to anyone else such a lead does not exist."""
        lead = self.store.leads.get(lead_id)
        if not can_see_lead(self.caller, lead.owner_id, lead.owner_team):
            raise NotFound("lead", lead_id)
        return lead

    @capture_rpc
    def SearchLeads(self, request, context):
        offset, limit = page_window(request.page)
        captured_from = from_timestamp(request.captured_from, "captured_from")
        captured_to = from_timestamp(request.captured_to, "captured_to")
        if captured_from and captured_to and captured_to <= captured_from:
            raise InvalidArgument([FieldViolation("captured_to", "must be after captured_from")])
        owner = self.caller.id if self.caller.role == Role.REP else (request.owner_id or None)
        team = self.caller.team if self.caller.role == Role.MANAGER else None
        leads = self.store.leads.search(
            text_words=matching.query_words(request.text), source=request.source, tag=request.tag,
            captured_from=captured_from, captured_to=captured_to, owner_id=owner, team=team,
            possible_duplicates_only=request.possible_duplicates_only,
            needs_review_only=request.needs_review_only, offset=offset, limit=limit)
        return capture_pb2.SearchLeadsResponse(
            leads=[mappers.lead_to_proto(lead) for lead in leads],
            page=common_pb2.PageResponse(next_page_token=next_page_token(offset, limit, len(leads))))

    @capture_rpc(roles=EDITORS)
    def MergeLeads(self, request, context):
        check_ids = InvalidArgument([FieldViolation(name, "is required") for name in
                                     ("primary_lead_id", "duplicate_lead_id") if not getattr(request, name)])
        if check_ids.violations:
            raise check_ids
        self._visible_lead(request.primary_lead_id)
        self._visible_lead(request.duplicate_lead_id)
        merged = self.store.leads.merge(request.primary_lead_id, request.duplicate_lead_id, self.caller.id)
        metrics.LEADS_MERGED.inc()
        return capture_pb2.MergeLeadsResponse(lead=mappers.lead_to_proto(merged))

    @capture_rpc(roles=EDITORS)
    def UnmergeLeads(self, request, context):
        if not request.lead_id:
            raise InvalidArgument([FieldViolation("lead_id", "is required")])
        self._visible_lead(request.lead_id)
        restored, primary = self.store.leads.unmerge(request.lead_id, self.caller.id)
        return capture_pb2.UnmergeLeadsResponse(lead=mappers.lead_to_proto(restored),
                                                primary=mappers.lead_to_proto(primary))

    @capture_rpc(roles=SUBMITTERS)
    def RecordActivity(self, request, context):
        type_name = enum_label(capture_pb2.ActivityType, request.type, "type", "ACTIVITY_TYPE_")
        email = request.email.strip().lower()
        activity = activities.new_activity(
            activity_type=type_name, lead_id=request.lead_id, email=email, visitor_id=request.visitor_id,
            url=request.url, occurred_at=from_timestamp(request.occurred_at, "occurred_at"),
            properties=dict(request.properties),
            activity_id=request.activity_id, now=utcnow(), recorded_by=self.caller.id)
        stored, recorded = self.store.leads.record_activity(activity, email=email)
        if recorded:
            metrics.ACTIVITIES_RECORDED.labels(stored.type).inc()
        return capture_pb2.RecordActivityResponse(activity_id=request.activity_id or stored.id,
                                                  lead_id=stored.lead_id, recorded=recorded)

    # ---- gRPC: forms, import, business cards ----------------------------------------------------

    @capture_rpc(roles=EDITORS)
    def PutForm(self, request, context):
        form = forms.validate_form(mappers.form_from_proto(request.form))
        document = self.store.forms.put(form.form_id, mappers.form_to_definition(form), forms.new_public_key(),
                                        self.caller.id)
        return capture_pb2.PutFormResponse(form=self._form_proto(document))

    @capture_rpc(roles=SUBMITTERS)
    def GetForm(self, request, context):
        return capture_pb2.GetFormResponse(form=self._form_proto(self.store.forms.get(request.form_id)))

    @capture_rpc(roles=SUBMITTERS)
    def ListForms(self, request, context):
        offset, limit = page_window(request.page)
        documents = self.store.forms.list(offset, limit)
        return capture_pb2.ListFormsResponse(
            forms=[self._form_proto(document) for document in documents],
            page=common_pb2.PageResponse(next_page_token=next_page_token(offset, limit, len(documents))))

    def _form_proto(self, document):
        form = mappers.form_from_document(document)
        base = _public_base()
        return mappers.form_to_proto(form, url=forms.form_url(base, form.public_key),
                                     qr_url=f"{base}/f/{form.public_key}/qr.png")

    @capture_rpc(roles=SUBMITTERS)
    def ImportLeadFile(self, request, context):
        header, chunks = stream_header(request)
        defaults = file_import.header_settings(header)  # a bad header is refused before any byte is read
        import_id = checked_import_id(header.import_id, "header.import_id")
        with tracked(self.imports, import_id, self.caller.id, "file") as tracker:
            job = file_import.LeadFileImport(self.store.leads, self.store.forms, captured_by=self.caller.id,
                                             max_bytes=config["IMPORT_MAX_BYTES"], tracker=tracker)
            report = job.run(header, chunks, defaults)
        for outcome_source, count in report.created_by_source.items():
            metrics.LEADS_CAPTURED.labels(metrics.source_label(outcome_source)).inc(count)
        return mappers.import_report_to_proto(report, import_id)

    @capture_rpc(roles=SUBMITTERS)
    def GetImportProgress(self, request, context):
        return capture_pb2.GetImportProgressResponse(
            progress=import_progress_to_proto(self.imports.get(request.import_id, self.caller)))

    @capture_rpc(roles=SUBMITTERS)
    def ScanBusinessCard(self, request, context):
        region = (request.default_region or "CN").upper()
        # Decoding and resizing the photo off the hub; Tesseract itself runs as a (green) subprocess.
        scan = cards.read_card(off_the_hub(cards.prepare_card, request.image), default_region=region)
        metrics.CARDS_SCANNED.labels("review" if scan.needs_review else "confident").inc()
        response = capture_pb2.ScanBusinessCardResponse(
            fields=mappers.card_fields_to_proto(scan), needs_review=scan.needs_review, text=scan.text)
        raw = scan.to_lead_input(source=request.attribution.source or "business_card", default_region=region,
                                 tags=(*request.tags, domain.CHANNEL_TAGS["business_card"]))
        raw.medium, raw.campaign = request.attribution.medium, request.attribution.campaign
        if request.read_only or not (raw.email or raw.phone):
            return response
        lead = domain.normalise_lead(raw, str(uuid.uuid4()), utcnow(), default_region=region)
        submission = self.store.leads.submit(lead, "", captured_by=self.caller.id)
        _count(submission)
        response.lead.CopyFrom(mappers.lead_to_proto(submission.lead))
        response.created, response.merged = submission.created, submission.merged
        return response

    # ---- events ----------------------------------------------------------------------------------

    @event_handler("routing", "lead_assigned")
    def handle_lead_assigned(self, events):
        """Capture keeps the owner on the lead so reps can find and read their own leads here
        (a batch of events: services.common.messaging.BatchEventHandler)."""
        return self.store.leads.set_owner(events, "handle_lead_assigned")

    @event_handler("routing", "lead_reassigned")
    def handle_lead_reassigned(self, events):
        return self.store.leads.set_owner(events, "handle_lead_reassigned")

    # ---- public HTTP: forms ----------------------------------------------------------------------

    def _public_form(self, key: str):
        form = mappers.form_from_document(self.store.forms.by_public_key(key))
        if not form.active:
            raise NotFound("form", key)
        return form

    @staticmethod
    def _own_origin() -> str:
        """The form page posts back to its own origin, which is therefore always allowed."""
        parts = urlsplit(_public_base())
        return f"{parts.scheme}://{parts.netloc}"

    def _limit(self, request, bucket: str, per_minute_setting: str) -> None:
        """Count the request against its client address's allowance (429 past it)."""
        address = client_address(request, config["TRUSTED_PROXY_HOPS"])
        self.rate_limits.hit(bucket, address, config[per_minute_setting])

    @public_http("GET", "/f/<string:key>")
    def form_page(self, request, key):
        self._limit(request, "page", "BEACON_RATE_LIMIT_PER_MINUTE")
        form = self._public_form(key)
        base = _public_base()
        html = forms.render_form_html(form, f"{base}/f/{key}", dict(request.args), own_origin=self._own_origin())
        return Response(html, mimetype="text/html", headers={
            "Content-Security-Policy": f"frame-ancestors {forms.frame_ancestors(form, self._own_origin())}",
            "Cache-Control": "no-store"})

    @public_http("GET", "/f/<string:key>/qr.png")
    def form_qr(self, request, key):
        # Rendering a QR code is CPU work on the loop that serves every call: limited like page views.
        self._limit(request, "page", "BEACON_RATE_LIMIT_PER_MINUTE")
        form = self._public_form(key)
        check = Validator()
        for name in ("source", "medium", "campaign"):
            check.max_length(request.args.get(name, ""), domain.MAX_SOURCE, name)
        check.raise_if_invalid()
        base = _public_base()
        url = forms.form_url(base, form.public_key, source=request.args.get("source"),
                             medium=request.args.get("medium"), campaign=request.args.get("campaign"))
        return Response(forms.form_qr_png(url), mimetype="image/png", headers={"Cache-Control": "public, max-age=300"})

    @public_http("POST", "/f/<string:key>")
    def form_submit(self, request, key):
        self._limit(request, "form", "FORM_RATE_LIMIT_PER_MINUTE")
        body = read_body(request, config["PUBLIC_MAX_BODY_BYTES"])
        form = self._public_form(key)
        if not forms.origin_allowed(form, request.headers.get("Origin"), request.headers.get("Referer"),
                                    own_origin=self._own_origin()):
            metrics.PUBLIC_REJECTED.labels("form", "origin").inc()
            return json_response({"error": "permission_denied", "message": "this site may not post this form"}, 403)
        values = self._form_values(request, body)
        wants_json = "application/json" in request.headers.get("Accept", "") or request.mimetype == "application/json"
        if forms.is_bot_submission(values):
            # Look like success so the bot learns nothing; store nothing.
            metrics.PUBLIC_REJECTED.labels("form", "honeypot").inc()
            return self._form_done(form, wants_json, None)
        # The tracking cookie the beacon set: the visitor's earlier pages become this lead's.
        if not values.get(forms.VISITOR_ID_FIELD) and request.cookies.get(VISITOR_COOKIE):
            values[forms.VISITOR_ID_FIELD] = request.cookies[VISITOR_COOKIE]
        try:
            raw = domain.with_channel_tag(forms.parse_submission(form, values, dict(request.args)), "form")
            lead = domain.normalise_lead(raw, str(uuid.uuid4()), utcnow(), prefix="fields",
                                         default_region=form.default_region)
        except InvalidArgument as exc:
            if wants_json:
                raise
            # A browser without script gets the page back, its answers kept and each problem shown.
            prefill = {**dict(request.args), **{k: v[0] if isinstance(v, list) else v for k, v in values.items()}}
            html = forms.render_form_html(form, f"{_public_base()}/f/{key}", prefill,
                                          own_origin=self._own_origin(), errors=forms.field_errors(exc))
            return Response(html, status=422, mimetype="text/html")
        submission = self.store.leads.submit(lead, "", captured_by=f"form:{form.form_id}", trusted=False)
        _count(submission)
        return self._form_done(form, wants_json, submission)

    @staticmethod
    def _form_values(request, body: bytes) -> dict:
        if request.mimetype == "application/json":
            return json_object(body)
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            # The body was read (and bounded) already; werkzeug parses a request over those bytes.
            bounded = Request({**request.environ, "wsgi.input": BytesIO(body), "CONTENT_LENGTH": str(len(body))})
            return bounded.form.to_dict(flat=False)
        raise UnsupportedMediaType("send application/x-www-form-urlencoded, multipart/form-data or application/json")

    @staticmethod
    def _form_done(form, wants_json: bool, submission):
        lead_id = submission.lead.lead_id if submission else str(uuid.uuid4())
        if wants_json:
            return json_response({"status": "received", "lead_id": lead_id,
                                  "message": form.thank_you_message or ""}, 201)
        if form.redirect_url:
            return Response("", status=303, headers={"Location": form.redirect_url})
        return Response(forms.render_thank_you_html(form), status=201, mimetype="text/html")

    # ---- public HTTP: webhooks and the beacon ----------------------------------------------------

    @public_http("POST", "/webhooks/<string:source>")
    def webhook(self, request, source):
        """An ad platform or landing-page tool posts a lead as JSON, signed with the source's secret:
        ``X-Leadflow-Signature: sha256=<hex HMAC of "<X-Leadflow-Timestamp>.<body>">``, at most five
        minutes old; ``X-Leadflow-Delivery`` names the delivery, so a redelivery is acknowledged without
        creating anything."""
        source = source.lower()
        self._limit(request, "webhook", "WEBHOOK_RATE_LIMIT_PER_MINUTE")
        secret = webhooks.parse_secrets(config.get("WEBHOOK_SECRETS", "")).get(source)
        if secret is None:
            raise NotFound("webhook source", source)
        body = read_body(request, config["PUBLIC_MAX_BODY_BYTES"])
        if not webhook_signing.is_signed_by(
                secret, request.headers.get(webhook_signing.TIMESTAMP_HEADER, ""), body,
                request.headers.get(webhook_signing.SIGNATURE_HEADER, ""), now=time.time()):
            metrics.PUBLIC_REJECTED.labels("webhook", "signature").inc()
            raise Unauthenticated(f"missing, wrong or stale {webhook_signing.SIGNATURE_HEADER} (sha256 HMAC of "
                                  f"'<{webhook_signing.TIMESTAMP_HEADER}>.<body>', at most "
                                  f"{webhook_signing.TOLERANCE_SECONDS} s old)")
        delivery = request.headers.get(webhook_signing.DELIVERY_HEADER, "").strip()
        if not delivery:
            raise InvalidArgument([FieldViolation(webhook_signing.DELIVERY_HEADER, "header is required")])
        raw = domain.with_channel_tag(mappers.lead_input_from_json(json_object(body), default_source=source), "webhook")
        lead = domain.normalise_lead(raw, str(uuid.uuid4()), utcnow())
        key = domain.validate_idempotency_key(delivery, webhook_signing.DELIVERY_HEADER)
        submission = self.store.leads.submit(lead, key, captured_by=f"webhook:{source}")
        _count(submission)
        replayed = not submission.created and not submission.merged
        return json_response({"lead_id": submission.lead.lead_id, "created": submission.created,
                              "merged": submission.merged, "replayed": replayed},
                             201 if submission.created else 200)

    @public_http("GET,POST", "/t")
    def beacon(self, request):
        """Tracking pixel (GET, answers a 1x1 GIF) and beacon (POST JSON, navigator.sendBeacon). The
        public beacon knows visitors only: their activity becomes a lead's once the visitor fills in a
        form. Naming a lead or an email here would let anyone inflate any lead's engagement."""
        self._limit(request, "beacon", "BEACON_RATE_LIMIT_PER_MINUTE")
        if request.method == "POST":
            values = json_object(read_body(request, config["PUBLIC_MAX_BODY_BYTES"]))
        else:
            values = request.args.to_dict()
        properties = values.get("properties") or {}
        if not isinstance(properties, dict):
            raise InvalidArgument([FieldViolation("properties", "must be an object")])
        # A browser without a visitor id of its own gets one in a first-party cookie.
        visitor_id = str(values.get("visitor_id", "") or request.cookies.get(VISITOR_COOKIE, ""))
        new_visitor = not visitor_id
        visitor_id = visitor_id or uuid.uuid4().hex
        activity = activities.new_activity(
            activity_type=str(values.get("type", "page_view")), visitor_id=visitor_id,
            url=str(values.get("url", "") or request.headers.get("Referer", "")), occurred_at=None,
            properties=properties, activity_id="", now=utcnow(), recorded_by="beacon")
        stored, recorded = self.store.leads.record_activity(activity)
        if recorded:
            metrics.ACTIVITIES_RECORDED.labels(stored.type).inc()
        if request.method == "GET":
            response = Response(PIXEL, mimetype="image/gif", headers={"Cache-Control": "no-store"})
        else:
            response = json_response({"activity_id": stored.id, "visitor_id": visitor_id, "recorded": recorded}, 202)
        if new_visitor:
            # The pixel and the embedded form are third-party on the customer's site: the cookie must be
            # SameSite=None (which browsers accept only over https). Sites whose visitors block such
            # cookies pass their own visitor_id to both instead.
            secure = _public_base().startswith("https://")
            response.set_cookie(VISITOR_COOKIE, visitor_id, max_age=VISITOR_COOKIE_SECONDS, httponly=True,
                                secure=secure, samesite="None" if secure else "Lax")
        return response

