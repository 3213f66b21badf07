"""vLLM's ``AsyncLLM`` running inside the server process (CPU build here, CUDA on GPUs).

The engine core runs in a child process that vLLM starts; this class owns the
front half: chat templating and tokenization (in a small thread pool, each thread
with a tokenizer of its own, so the event loop never stalls), context-length checks
that turn impossible requests into clear 400s before any work is queued, and
translation of vLLM's outputs into ``GenerationChunk`` deltas. vLLM registers its
``vllm:*`` Prometheus metrics in the default registry, so ``/metrics`` exposes them
without extra work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import (
    ContextLengthExceededError,
    EngineUnavailableError,
    GenerationError,
    InvalidRequestError,
)
from models.engine.base import ChatMessage, GenerationChunk, ModelInfo, SamplingOptions
from models.engine.judge import (
    JUDGE_OPTIONS,
    JUDGE_TOP_LOGPROBS,
    all_or_cancel,
    yes_probability,
    yes_probability_of_text,
)
from models.prepare import prepare_model
from models.registry import ModelSpec

log = logging.getLogger(__name__)

RESERVED_CORES_ENV = "VLLM_CPU_NUM_OF_RESERVED_CPU"
SMALL_MACHINE_CORES = 4
"""Up to this many usable cores, vLLM's CPU backend gets all of them by default."""


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def reserved_cores(configured: int | None, cores: int | None = None) -> int | None:
    """Cores vLLM's CPU backend should leave to the API process; None keeps vLLM's choice.

    By default vLLM keeps one core per engine process (one, without tensor parallelism)
    free of its compute threads, for the process that tokenizes and streams. On a 2-core
    machine that halves the compute for prefill and decode alike (serving benchmark, 16
    streams: 1.21x the tokens/s with both cores; docs/benchmarks.md), so small machines give
    the engine every core.
    """
    if configured is not None:
        return configured
    return 0 if (cores or usable_cores()) <= SMALL_MACHINE_CORES else None


def apply_cpu_thread_settings(configured: int | None) -> None:
    """Set vLLM's reserved-core count for the engine-core process it is about to spawn.

    An operator's own ``VLLM_CPU_NUM_OF_RESERVED_CPU`` wins over Concierge's default.
    """
    if RESERVED_CORES_ENV in os.environ and configured is None:
        return
    reserved = reserved_cores(configured)
    if reserved is not None:
        os.environ[RESERVED_CORES_ENV] = str(reserved)


@dataclass(frozen=True)
class VllmLocalConfig:
    """Everything needed to build the in-process engine."""

    model: ModelSpec
    data_dir: Path
    served_model_name: str
    dtype: str = "bfloat16"
    max_model_len: int = 4096
    kv_cache_memory_bytes: int | None = 2 << 30
    gpu_memory_utilization: float = 0.9
    tensor_parallel_size: int = 1
    enforce_eager: bool = False
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    cpu_reserved_cores: int | None = None
    tokenizer_threads: int = 2


class VllmLocalEngine:
    """``EngineClient`` over vLLM's in-process ``AsyncLLM``."""

    def __init__(self, config: VllmLocalConfig) -> None:
        self._config = config
        self._engine: Any = None
        self._tokenizers = TokenizerSet()
        self._info: ModelInfo | None = None
        self._pool = ThreadPoolExecutor(
            max_workers=config.tokenizer_threads, thread_name_prefix="tokenize"
        )

    @property
    def config(self) -> VllmLocalConfig:
        """The settings this engine was built with (read-only)."""
        return self._config

    @property
    def ready(self) -> bool:
        return self._engine is not None and not self._engine.errored

    @property
    def model_info(self) -> ModelInfo:
        if self._info is None:
            raise EngineUnavailableError("the engine has not started yet")
        return self._info

    async def start(self) -> None:
        """Prepare the weights, then build ``AsyncLLM`` (vLLM spawns its engine-core process)."""
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        cfg = self._config
        started = time.monotonic()
        prepared = await asyncio.to_thread(prepare_model, cfg.model, cfg.data_dir)
        await asyncio.to_thread(self._tokenizers.load, prepared.location, cfg.tokenizer_threads)
        apply_cpu_thread_settings(cfg.cpu_reserved_cores)
        args = AsyncEngineArgs(
            model=prepared.location,
            served_model_name=cfg.served_model_name,
            dtype=cfg.dtype,
            max_model_len=cfg.max_model_len,
            tensor_parallel_size=cfg.tensor_parallel_size,
            enforce_eager=cfg.enforce_eager,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            kv_cache_memory_bytes=cfg.kv_cache_memory_bytes,
            max_num_seqs=cfg.max_num_seqs,
            max_num_batched_tokens=cfg.max_num_batched_tokens,
            disable_log_stats=False,  # keeps the vllm:* Prometheus metrics updated
        )
        # No local name for the engine: a lingering frame must not keep it alive after
        # shutdown(), or vLLM's __del__ runs again during interpreter teardown.
        self._engine = await _build_in_daemon_thread(lambda: AsyncLLM.from_engine_args(args))
        model_config = self._engine.model_config
        self._info = ModelInfo(
            name=cfg.served_model_name,
            max_model_len=int(model_config.max_model_len),
            owned_by="concierge",
            created=int(time.time()),
            details={
                "engine": "vllm_local",
                "dtype": str(model_config.dtype).removeprefix("torch."),
                "compiled": str(not cfg.enforce_eager).lower(),
            },
        )
        log.info(
            "vllm_local engine ready in %.1f s (model=%s, max_model_len=%d, eager=%s)",
            time.monotonic() - started,
            cfg.served_model_name,
            self._info.max_model_len or 0,
            cfg.enforce_eager,
        )

    def _render_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        with self._tokenizers.borrow() as tokenizer:
            text = tokenizer.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in messages],
                add_generation_prompt=True,
                tokenize=False,
            )
            return list(tokenizer.encode(text, add_special_tokens=False))

    def _encode(self, prompt: str) -> list[int]:
        with self._tokenizers.borrow() as tokenizer:
            return list(tokenizer.encode(prompt))

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        options: SamplingOptions,
        request_id: str,
        affinity: str | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        return self._stream(lambda: self._render_chat(messages), options, request_id, "messages")

    def stream_completion(
        self,
        prompt: str,
        options: SamplingOptions,
        request_id: str,
        affinity: str | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        return self._stream(lambda: self._encode(prompt), options, request_id, "prompt")

    async def _stream(
        self, tokenize: Any, options: SamplingOptions, request_id: str, prompt_param: str
    ) -> AsyncIterator[GenerationChunk]:
        from vllm import SamplingParams
        from vllm.exceptions import VLLMClientError
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.exceptions import EngineDeadError

        if not self.ready:
            raise EngineUnavailableError("the engine is not ready")
        loop = asyncio.get_running_loop()
        try:
            prompt_ids: list[int] = await loop.run_in_executor(self._pool, tokenize)
        except Exception as exc:  # e.g. a chat template that refuses this role order
            raise InvalidRequestError(f"the prompt could not be rendered: {exc}") from exc
        max_tokens = self._fit_max_tokens(len(prompt_ids), options.max_tokens, prompt_param)
        params = SamplingParams(
            n=1,
            max_tokens=max_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            seed=options.seed,
            stop=list(options.stop) or None,
            presence_penalty=options.presence_penalty,
            frequency_penalty=options.frequency_penalty,
            ignore_eos=options.ignore_eos,
            output_kind=RequestOutputKind.DELTA,
        )
        produced = 0
        try:
            # vLLM's renderer turns token ids into its engine input (the non-deprecated path).
            (engine_input,) = self._engine.renderer.render_cmpl([{"prompt_token_ids": prompt_ids}])
            async for out in self._engine.generate(engine_input, params, request_id=request_id):
                completion = out.outputs[0]
                produced += len(completion.token_ids)
                yield GenerationChunk(
                    text=completion.text,
                    prompt_tokens=len(prompt_ids),
                    output_tokens=produced,
                    finish_reason=_finish_reason(completion.finish_reason)
                    if out.finished
                    else None,
                )
        except EngineDeadError as exc:
            raise EngineUnavailableError("the engine died; the server must restart") from exc
        except (ValueError, VLLMClientError) as exc:  # vLLM's own input validation
            # e.g. an empty prompt: the client's mistake, so a 400 rather than a 500
            raise InvalidRequestError(str(exc)) from exc
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            log.exception("generation failed for %s", request_id)
            raise GenerationError("generation failed inside the engine") from exc

    async def judge_yes_no(
        self, prompts: Sequence[Sequence[ChatMessage]], request_id: str
    ) -> list[float]:
        """One greedy token per prompt with its top log-probabilities, all prompts in flight
        at once: vLLM schedules them in one batch, and the prefix they share (the system
        prompt and the question) is computed once and read from the prefix cache after."""
        if not self.ready:
            raise EngineUnavailableError("the engine is not ready")
        return await all_or_cancel(
            self._judge(messages, f"{request_id}-{number}")
            for number, messages in enumerate(prompts)
        )

    async def _judge(self, messages: Sequence[ChatMessage], request_id: str) -> float:
        from vllm import SamplingParams
        from vllm.exceptions import VLLMClientError
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.exceptions import EngineDeadError

        loop = asyncio.get_running_loop()
        try:
            prompt_ids: list[int] = await loop.run_in_executor(
                self._pool, self._render_chat, messages
            )
        except Exception as exc:
            raise InvalidRequestError(f"the prompt could not be rendered: {exc}") from exc
        self._fit_max_tokens(len(prompt_ids), JUDGE_OPTIONS.max_tokens, "messages")
        params = SamplingParams(
            n=1,
            max_tokens=JUDGE_OPTIONS.max_tokens,
            temperature=JUDGE_OPTIONS.temperature,
            logprobs=JUDGE_TOP_LOGPROBS,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        final = None
        try:
            (engine_input,) = self._engine.renderer.render_cmpl([{"prompt_token_ids": prompt_ids}])
            async for out in self._engine.generate(engine_input, params, request_id=request_id):
                final = out
        except EngineDeadError as exc:
            raise EngineUnavailableError("the engine died; the server must restart") from exc
        except (ValueError, VLLMClientError) as exc:
            raise InvalidRequestError(str(exc)) from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("judging failed for %s", request_id)
            raise GenerationError("judging failed inside the engine") from exc
        if final is None or not final.outputs:
            raise GenerationError("the engine ended a judgment without output")
        completion = final.outputs[0]
        if not completion.logprobs:
            return yes_probability_of_text(completion.text)
        first = completion.logprobs[0]
        return yes_probability((lp.decoded_token or "", lp.logprob) for lp in first.values())

    def _fit_max_tokens(self, prompt_len: int, requested: int | None, prompt_param: str) -> int:
        """Refuse prompts that leave no room; default max_tokens to what is left."""
        limit = self.model_info.max_model_len or 0
        room = limit - prompt_len
        if room <= 0:
            raise ContextLengthExceededError(
                f"the prompt is {prompt_len} tokens; this model's context is {limit} tokens",
                param=prompt_param,
            )
        if requested is None:
            return room
        if requested > room:
            raise ContextLengthExceededError(
                f"max_tokens={requested} plus the prompt's {prompt_len} tokens exceeds "
                f"the model's context of {limit} tokens; ask for at most {room}",
                param="max_tokens",
            )
        return requested

    async def abort(self, request_id: str) -> None:
        if self._engine is not None:
            await self._engine.abort(request_id)

    async def check_health(self) -> None:
        if self._engine is None:
            raise EngineUnavailableError("the engine is still starting")
        try:
            await self._engine.check_health()
        except Exception as exc:
            raise EngineUnavailableError(f"the engine is not healthy: {exc}") from exc

    async def shutdown(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await asyncio.to_thread(engine.shutdown)
        self._pool.shutdown(wait=False, cancel_futures=True)


class TokenizerSet:
    """Tokenizers of Concierge's own, one per tokenizing thread, never vLLM's.

    vLLM's renderer wraps its tokenizer in a pool of (renderer workers + 1) deep copies and
    borrows one on the event loop for every request it adds (the EOS token id). When
    Concierge's threads rendered prompts with that same object, they could empty the pool,
    and vLLM then deep-copied the tokenizer on the event loop: about 0.3 s on this project's
    2-core machines, during which no stream moved (seen in a py-spy profile at concurrency
    4). With as many tokenizers here as threads, ``borrow`` never waits and vLLM's pool only
    serves vLLM. They are loaded from the same folder as the engine's, so they render and
    encode alike.
    """

    def __init__(self) -> None:
        self._free: queue.Queue[Any] = queue.Queue()

    def load(self, folder: str | Path, copies: int) -> None:
        """Load ``copies`` tokenizers from ``folder`` (blocking: call it off the event loop)."""
        from transformers import AutoTokenizer

        for _ in range(copies):
            self._free.put(AutoTokenizer.from_pretrained(str(folder)))

    @contextmanager
    def borrow(self) -> Iterator[Any]:
        """A tokenizer no other thread uses until it is given back."""
        tokenizer = self._free.get()
        try:
            yield tokenizer
        finally:
            self._free.put(tokenizer)


def _finish_reason(reason: str | None) -> Any:
    """vLLM says stop/length/abort; anything else is reported as stop."""
    return reason if reason in {"stop", "length", "abort"} else "stop"


async def _build_in_daemon_thread(build: Callable[[], Any]) -> Any:
    """Run a blocking engine build off the event loop, without holding up shutdown.

    Building takes 30-100 s and cannot be interrupted. In a daemon thread (unlike the
    default executor, which the interpreter joins at exit) a server stopped mid-start
    exits promptly; an engine that still gets built after cancellation is shut down.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    abandoned = threading.Event()

    def run() -> None:
        try:
            result = build()
        except BaseException as exc:
            if not abandoned.is_set():
                loop.call_soon_threadsafe(_settle, future, None, exc)
            return
        if abandoned.is_set():
            log.info("shutting down an engine whose start was cancelled")
            result.shutdown()
            return
        loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=run, name="vllm-engine-build", daemon=True).start()
    try:
        return await future
    except asyncio.CancelledError:
        abandoned.set()
        await _stop_engine_core_processes()
        raise


async def _stop_engine_core_processes(grace_s: float = 5.0) -> None:
    """Stop every process a cancelled build has started: SIGTERM, then SIGKILL.

    At interpreter exit, ``multiprocessing`` joins its child processes; whether vLLM's
    own finalizer has stopped them by then depends on the order the two exit hooks were
    registered in, which any imported library can change. Without this, a server stopped
    mid-compile could wait for the whole compilation.

    The whole tree goes, not only the engine core this process started: the core starts
    workers of its own (``VLLM::Worker``), and a worker busy compiling notices its
    parent's death late or not at all, so it outlived the server by more than 15 s in
    two of the test runs before this. Anything that ignores SIGTERM while it compiles
    gets SIGKILL after ``grace_s``.
    """
    import psutil

    try:
        tree = psutil.Process().children(recursive=True)
    except psutil.Error:
        tree = []
    for process in tree:
        with contextlib.suppress(psutil.Error):
            log.info(
                "stopping %s (pid %s) of a cancelled engine start", process.name(), process.pid
            )
            process.terminate()
    _, alive = await asyncio.to_thread(psutil.wait_procs, tree, grace_s)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    await asyncio.to_thread(psutil.wait_procs, alive, grace_s)
    # reap the multiprocessing handles of the children, so that exit does not join them
    for child in multiprocessing.active_children():
        child.join(0)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
