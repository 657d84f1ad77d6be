"""MESH HTTP routes under ``/messageexchange`` (and the sandbox's ``/admin/reset``).

Responses follow the MESH API: version 2 JSON when the Accept header asks for
``application/vnd.mesh.v2+json``, version 1 otherwise; errors in the DTS shape of each version.
Mutual TLS belongs in front of this, at the load balancer (docs/security.md).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute

from openspine import __version__
from openspine.directory.domain import MeshMailbox
from openspine.mesh.domain import MeshMessage, MessageStatus, MessageType
from openspine.mesh.service import Caller, MeshError, MeshForbidden, MeshService
from openspine.platform.http import audit_context
from openspine.platform.routing import SpineRoute

__all__ = ["BASE", "QUERY_PARAMETERS", "routes"]

BASE: Final = "/messageexchange"
#: The query parameters of each (path, method), for the OpenAPI document.
QUERY_PARAMETERS: Final = {
    (f"{BASE}/{{mailbox_id}}/inbox", "GET"): ("max_results", "continue_from", "workflow_filter"),
    (f"{BASE}/{{mailbox_id}}/outbox/tracking", "GET"): ("messageID",),
}
V2: Final = "application/vnd.mesh.v2+json"
V1: Final = "application/json"


def _v2(request: Request) -> bool:
    return V2 in request.headers.get("accept", "")


def _json(request: Request, v1: dict[str, Any], v2: dict[str, Any], status: int = 200) -> Response:
    if _v2(request):
        return Response(orjson.dumps(v2), status, media_type=V2)
    return Response(orjson.dumps(v1), status, media_type=V1)


def error_response(request: Request, exc: MeshError) -> Response:
    if exc.status == 403 and exc.event == "AUTH":
        return Response(status_code=403)  # MESH answers an authentication failure with no body
    return _json(
        request,
        {
            "messageID": exc.message_id,
            "errorEvent": exc.event,
            "errorCode": exc.code,
            "errorDescription": exc.description,
        },
        {
            "message_id": exc.message_id,
            "internal_id": exc.message_id,
            "detail": [{"event": exc.event, "code": exc.code, "msg": exc.description}],
        },
        exc.status,
    )


async def mesh_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MeshError)
    return error_response(request, exc)


def _headers(message: MeshMessage, chunk: int) -> dict[str, str]:
    headers = {
        "mex-MessageID": message.message_id,
        "mex-From": message.sender,
        "mex-To": message.recipient,
        "mex-WorkflowID": message.workflow_id,
        "mex-MessageType": message.message_type.value,
        "mex-Chunk-Range": f"{chunk}:{message.total_chunks}",
        "mex-Total-Chunks": str(message.total_chunks),
        "mex-Content-Encrypted": "Y" if message.encrypted else "N",
        # As NHS's mesh-sandbox: a transparently gzipped transfer reads as compressed too.
        "mex-Content-Compressed": (
            "Y" if message.compressed or message.content_encoding == "gzip" else "N"
        ),
        "mex-Content-Type": message.content_type,
        "mex-Version": "1.0",
    }
    optional = {
        "mex-Subject": message.subject,
        "mex-FileName": message.file_name,
        "mex-LocalID": message.local_id,
        "mex-PartnerID": message.partner_id,
        "mex-Content-Checksum": message.checksum,
        "mex-LinkedMsgID": message.linked_message_id,
        "mex-StatusEvent": message.status_event,
        "mex-StatusCode": message.status_code,
        "mex-StatusDescription": message.status_description,
    }
    headers.update({k: v for k, v in optional.items() if v})
    if message.message_type is MessageType.REPORT:
        headers["mex-StatusSuccess"] = "ERROR"
        headers["mex-StatusTimestamp"] = message.status_at
    return {k: v.encode("latin-1", "replace").decode("latin-1") for k, v in headers.items()}


def _header_map(request: Request) -> dict[str, str]:
    """The request's headers as a dict, looked up a dozen times by a send: Starlette's
    ``Headers`` scans the whole list on every lookup. The first of repeated names wins, as
    with ``Headers.get``."""
    return dict(reversed(request.headers.items()))


async def _gunzip(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    async for piece in pieces:
        out = inflate.decompress(piece)
        if out:
            yield out
    tail = inflate.flush()
    if tail:
        yield tail


def _tracking(message: MeshMessage, v2: bool) -> dict[str, Any]:
    acknowledged = message.status is MessageStatus.ACKNOWLEDGED
    if v2:
        return {
            "message_id": message.message_id,
            "local_id": message.local_id,
            "workflow_id": message.workflow_id,
            "filename": message.file_name,
            "expiry_time": message.expires_at,
            "upload_timestamp": message.accepted_at,
            "recipient": message.recipient,
            "recipient_name": None,
            "sender": message.sender,
            "status": message.status.value,
            "status_code": message.status_code,
            "status_description": message.status_description,
            "status_event": message.status_event,
            "status_success": message.status is not MessageStatus.UNDELIVERABLE,
            "status_timestamp": message.status_at,
            "file_size": message.file_size,
            "checksum": message.checksum,
            "chunk_count": message.total_chunks,
            "compressed": message.compressed,
            "encrypted": message.encrypted,
            "content_encoding": message.content_encoding,
            "message_type": message.message_type.value,
            "partner_id": message.partner_id,
            "subject": message.subject,
            "acknowledged_timestamp": message.status_at if acknowledged else None,
        }
    return {
        "messageId": message.message_id,
        "dtsId": message.message_id,
        "localId": message.local_id,
        "workflowId": message.workflow_id,
        "fileName": message.file_name,
        "expiryTime": message.expires_at,
        "uploadTimestamp": message.accepted_at,
        "recipient": message.recipient,
        "sender": message.sender,
        "status": message.status.value,
        "statusCode": message.status_code,
        "statusDescription": message.status_description,
        "statusEvent": message.status_event,
        "statusSuccess": "ERROR" if message.status is MessageStatus.UNDELIVERABLE else "SUCCESS",
        "statusTimestamp": message.status_at,
        "fileSize": message.file_size,
        "checksum": message.checksum,
        "chunkCount": message.total_chunks,
        "messageType": message.message_type.value,
        "partnerId": message.partner_id,
        "subject": message.subject,
        "downloadTimestamp": message.status_at if acknowledged else None,
        "version": "1.0",
    }


def routes(service: MeshService) -> list[BaseRoute]:
    async def auth(request: Request) -> MeshMailbox:
        """Authenticate and record the token as used (for requests that write nothing else)."""
        caller = await service.authenticate(
            request.path_params.get("mailbox_id"), request.headers.get("authorization")
        )
        return caller.mailbox

    async def auth_deferred(request: Request) -> Caller:
        """Authenticate; the token is recorded as used in the request's own commit."""
        return await service.authenticate(
            request.path_params.get("mailbox_id"),
            request.headers.get("authorization"),
            consume=False,
        )

    async def refused(caller: Caller, error: MeshError) -> MeshError:
        """A token is used even by a request that failed: record it, then answer the error.

        A 403 is the token itself refused (a replay found by the request's own commit): there
        is nothing left to record.
        """
        if not isinstance(error, MeshForbidden):
            await service.consume(caller.nonce)
        return error

    async def ping(request: Request) -> Response:
        body = {
            "status": "healthy",
            "timestamp": datetime.now(UTC).isoformat(),
            "version": __version__,
            "outbound_connectivity": True,
        }
        return Response(orjson.dumps(body), media_type=V1)

    async def handshake(request: Request) -> Response:
        mailbox = await auth(request)
        return _json(request, {"mailboxId": mailbox.mailbox_id}, {"mailbox_id": mailbox.mailbox_id})

    async def inbox(request: Request) -> Response:
        mailbox = await auth(request)
        raw = request.query_params.get("max_results", "500")
        if not (raw.isascii() and raw.isdigit()) or not 10 <= int(raw) <= 5000:
            raise MeshError(400, "RECEIVE", "400", "max_results must be between 10 and 5000")
        workflow = request.query_params.get("workflow_filter")
        page = await service.inbox(
            mailbox,
            max_results=int(raw),
            continue_from=request.query_params.get("continue_from"),
            workflow_filter=workflow,
        )
        links = {
            "self": str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
        }
        if page.next_token:
            params = {"max_results": raw, "continue_from": page.next_token}
            if workflow:
                params["workflow_filter"] = workflow
            links["next"] = f"{request.url.path}?{urlencode(params)}"
        return _json(
            request,
            {"messages": page.message_ids},
            {"messages": page.message_ids, "links": links, "approx_inbox_count": page.approx_count},
        )

    async def count(request: Request) -> Response:
        mailbox = await auth(request)
        n = await service.count(mailbox)
        return _json(
            request,
            {"count": n, "internalID": None, "allResultsIncluded": True},
            {"count": n, "internal_id": None, "all_results_included": True},
        )

    async def download(request: Request) -> Response:
        caller = await auth_deferred(request)
        message_id = request.path_params["message_id"]
        chunk = int(request.path_params.get("chunk_number", 1))
        try:
            message, digest = await service.for_download(caller.mailbox, message_id, chunk)
        except MeshError as exc:
            raise await refused(caller, exc) from None
        if chunk == 1:
            await service.audit_download(
                caller.mailbox, message_id, audit_context(request), caller.nonce
            )
        else:
            await service.consume(caller.nonce)
        headers = _headers(message, chunk)
        status = 206 if chunk < message.total_chunks else 200
        if request.method == "HEAD" or digest is None:
            return Response(b"", status, headers=headers, media_type=message.content_type)
        inflate = False
        if message.content_encoding == "gzip":
            if "gzip" in request.headers.get("accept-encoding", ""):
                headers["Content-Encoding"] = "gzip"
            else:
                inflate = True  # streamed: a small body may inflate to a very large one
        small = None if inflate else service.read_small_chunk(message, chunk)
        if small is not None:
            return Response(small, status, headers=headers, media_type=message.content_type)
        body = service.read_blob(digest)
        if inflate:
            body = _gunzip(body)
        return StreamingResponse(body, status, headers=headers, media_type=message.content_type)

    async def acknowledge(request: Request) -> Response:
        caller = await auth_deferred(request)
        message_id = request.path_params["message_id"]
        try:
            await service.acknowledge(
                caller.mailbox, message_id, audit_context(request), caller.nonce
            )
        except MeshError as exc:
            raise await refused(caller, exc) from None
        return _json(request, {"messageId": message_id}, {"message_id": message_id})

    async def send(request: Request) -> Response:
        caller = await auth_deferred(request)
        try:
            message = await service.send(
                caller.mailbox,
                _header_map(request),
                request.stream(),
                audit_context(request),
                caller.nonce,
            )
        except MeshError as exc:
            raise await refused(caller, exc) from None
        return _json(
            request, {"messageID": message.message_id}, {"message_id": message.message_id}, 202
        )

    async def send_chunk(request: Request) -> Response:
        caller = await auth_deferred(request)
        message_id = request.path_params["message_id"]
        chunk = int(request.path_params["chunk_number"])
        try:
            await service.upload_chunk(
                caller.mailbox,
                message_id,
                chunk,
                _header_map(request),
                request.stream(),
                audit_context(request),
                caller.nonce,
            )
        except MeshError as exc:
            raise await refused(caller, exc) from None
        return _json(
            request,
            {"messageID": message_id, "blockID": chunk},
            {"message_id": message_id, "chunk_number": chunk},
            202,
        )

    async def tracking(request: Request) -> Response:
        mailbox = await auth(request)
        message_id = request.query_params.get("messageID")
        if not message_id:
            raise MeshError(400, "TRACK", "400", "messageID is required")
        message = await service.track(mailbox, message_id)
        return _json(request, _tracking(message, False), _tracking(message, True))

    async def tracking_local(request: Request) -> Response:
        mailbox = await auth(request)
        found = await service.track_local(mailbox, request.path_params["local_id"])
        if not found:
            raise MeshError(404, "TRACK", "404", "Message does not exist")
        if len(found) > 1:
            raise MeshError(300, "TRACK", "300", "local_id is not unique")
        return Response(orjson.dumps(_tracking(found[0], False)), media_type=V1)

    async def lookup(request: Request) -> Response:
        ods, workflow = request.path_params["ods_code"], request.path_params["workflow_id"]
        found = await service.lookup(ods, workflow)
        v1 = [
            {"address": m.mailbox_id, "description": m.mailbox_name, "endpoint_type": "MESH"}
            for m in found
        ]
        v2 = [{"mailbox_id": m.mailbox_id, "mailbox_name": m.mailbox_name} for m in found]
        return _json(request, {"query_id": None, "results": v1}, {"results": v2})

    async def workflow_search(request: Request) -> Response:
        found = await service.workflow_search(request.path_params["workflow_id"])
        results = [
            {
                "mailbox_id": m.mailbox_id,
                "mailbox_name": m.mailbox_name,
                "workflow_id": request.path_params["workflow_id"],
                "direction": role,
            }
            for m, role in found
        ]
        return _json(request, {"query_id": None, "results": results}, {"results": results})

    async def reset(request: Request) -> Response:
        if not service.settings.sandbox:
            return Response(status_code=404)
        await service.reset(audit_context(request))
        return Response(status_code=200)

    async def no_route(request: Request) -> Response:
        raise MeshError(404, "ROUTE", "404", "No such MESH endpoint")

    return [
        SpineRoute(f"{BASE}/_ping", ping, methods=["GET"]),
        SpineRoute(f"{BASE}/endpointlookup/{{ods_code}}/{{workflow_id}}", lookup, methods=["GET"]),
        SpineRoute(f"{BASE}/workflowsearch/{{workflow_id}}", workflow_search, methods=["GET"]),
        SpineRoute(f"{BASE}/{{mailbox_id}}", handshake, methods=["POST"]),
        SpineRoute(f"{BASE}/{{mailbox_id}}/inbox", inbox, methods=["GET"]),
        SpineRoute(f"{BASE}/{{mailbox_id}}/count", count, methods=["GET"]),
        SpineRoute(
            f"{BASE}/{{mailbox_id}}/inbox/{{message_id}}", download, methods=["GET", "HEAD"]
        ),
        SpineRoute(
            f"{BASE}/{{mailbox_id}}/inbox/{{message_id}}/status/acknowledged",
            acknowledge,
            methods=["PUT"],
        ),
        SpineRoute(
            f"{BASE}/{{mailbox_id}}/inbox/{{message_id}}/{{chunk_number:int}}",
            download,
            methods=["GET"],
        ),
        SpineRoute(f"{BASE}/{{mailbox_id}}/outbox", send, methods=["POST"]),
        SpineRoute(
            f"{BASE}/{{mailbox_id}}/outbox/{{message_id}}/{{chunk_number:int}}",
            send_chunk,
            methods=["POST"],
        ),
        SpineRoute(f"{BASE}/{{mailbox_id}}/outbox/tracking", tracking, methods=["GET"]),
        SpineRoute(
            f"{BASE}/{{mailbox_id}}/outbox/tracking/{{local_id}}", tracking_local, methods=["GET"]
        ),
        SpineRoute("/admin/reset", reset, methods=["DELETE"]),
        # Anything else under the MESH base path is answered in MESH's error format.
        SpineRoute(
            f"{BASE}/{{rest:path}}",
            no_route,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            include_in_schema=False,
        ),
    ]
