"""The 93 properties of the configuration contract, defined once.

Validation, ``--set`` parsing, the JSON Schema and ``docs/config-reference.md``
are all derived from this table; nothing else lists properties. Descriptions
say what the property does *in axdrive* (which pass or simulator part reads
it), so the reference doubles as a map of where each knob acts.
"""

from __future__ import annotations

__all__ = ["PROPERTIES", "SECTIONS", "BY_NAME", "MEMORY_POOLS"]

from ._enums import (
    CompilerMode,
    DPUAllocationAlgorithm,
    GraphCleanerCondition,
    GraphCleanerNode,
    MulticoreMode,
    ProfilingLevel,
    QuantizationScheme,
)
from ._property import Property as P

MEMORY_POOLS = ("global.ddr", "global.l2", "global.l1")
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

SECTIONS: tuple[str, ...] = (
    "Quantization",
    "Graph transformations",
    "Graph cleaner",
    "Multi-core and scheduling",
    "Tiling and memory planning",
    "Memory hierarchy",
    "IMC and MVM",
    "Output and paths",
    "Hardware and runtime",
    "Profiling and debugging",
    "Internal paths",
    "Memory layout constants",
)

_Q, _G, _C, _M, _T, _H, _I, _O, _R, _P, _D, _L = SECTIONS

PROPERTIES: tuple[P, ...] = (
    # -- Quantization ----------------------------------------------------------
    P("compiler_mode", "enum", CompilerMode.QUANTIZE_AND_LOWER, _Q,
      "What a compile does: quantize the float model and lower it to an AIPU program, stop after "
      "quantization (writes a QDQ model for onnxruntime), or lower a model that is already QDQ-quantized "
      "taking its scales as they are.", enum=CompilerMode),
    P("quantization_scheme", "enum", QuantizationScheme.PER_TENSOR_HISTOGRAM, _Q,
      "How activation ranges are chosen from calibration data. Weights are per-output-channel symmetric "
      "min-max under every scheme.", enum=QuantizationScheme),
    P("quantize_dw_channel_wise", "bool", False, _Q,
      "Give depthwise convolutions per-channel input scales (folded into their weights) instead of one "
      "scale per tensor."),
    P("onnx_opset_version", "int", 17, _Q,
      "Opset of the QDQ model written by a quantizing mode (`quantized_model.onnx`).", minimum=17, maximum=21),
    P("quantization_debug", "bool", False, _Q,
      "After quantizing, compare every layer's float and quantized outputs on the calibration data and "
      "write a per-layer SQNR report (worst layers first) with the dumped model into `model_debug_save_dir`."),
    P("remove_io_quantization", "bool", False, _Q,
      "Drop the QuantizeLinear at the model inputs and the DequantizeLinear at its outputs, so the "
      "quantized model takes and returns int8 tensors."),
    P("quantized_graph_export", "bool", True, _Q,
      "Write `quantized_graph.json`: every integer tensor with scale and zero point, every layer with its "
      "requantization multipliers and shifts."),
    # -- Graph transformations ---------------------------------------------------
    P("apply_pword_padding", "bool", True, _G,
      "Pad channel counts to a multiple of PWORD (64 int8 lanes), which the memories and vector unit require."),
    P("rewrite_concat_to_resadd", "bool", True, _G,
      "Lower Concat as channel-shifted residual adds on the DPU instead of DMA copies into a channel slice."),
    P("rewrite_dense_to_conv2d", "bool", True, _G,
      "Turn Gemm/MatMul with constant weights into 1x1 convolutions, so dense layers share the convolution path."),
    P("remove_io_padding_and_layout_transform", "bool", True, _G,
      "Leave the NCHW<->NHWC transposes and channel padding of model inputs and outputs to the host "
      "runtime instead of running them on the device."),
    P("apply_arithmetic_simplification", "bool", True, _G,
      "Fold chains of constant multiplies and adds into neighbouring layers' requantization. Can change "
      "results by rounding; the measured deviation is documented."),
    P("simplify_mac_before_after_lut", "bool", True, _G,
      "Absorb multiply-adds next to a lookup table into the table itself. Can change results by rounding."),
    P("validate_operators", "bool", True, _G,
      "Before lowering, list every node the hardware cannot run, with its name and the reason, and stop."),
    # -- Graph cleaner -----------------------------------------------------------
    P("run_graph_cleaner", "bool", True, _C,
      "Split host-side pre- and post-processing (shape arithmetic, decoding tails, a final softmax the AIPU "
      "cannot lower) off the accelerator core into `host_preprocess.onnx` / `host_postprocess.onnx`; a final "
      "softmax over the channels stays on the device."),
    P("graph_cleaner_split_pre_post_processing", "bool", True, _C,
      "Split both ends of the graph; when false only the post-processing tail is cut off."),
    P("graph_cleaner_condition", "enum", None, _C,
      "Cut the core after a chosen node instead of at the first host-only operation: the node of type "
      "`graph_cleaner_node` with the largest weight tensor (or largest first weight dimension).",
      enum=GraphCleanerCondition, nullable=True),
    P("graph_cleaner_node", "enum", None, _C,
      "Operator type that `graph_cleaner_condition` is evaluated on.", enum=GraphCleanerNode, nullable=True),
    P("graph_cleaner_threshold", "int", 0, _C,
      "With a condition: only nodes whose weight measure exceeds this value are candidates.", minimum=0),
    P("graph_cleaner_dump_core_onnx", "path", None, _C,
      "File name (inside the output directory) to save the accelerator core as ONNX after cleaning.", nullable=True),
    P("graph_cleaner_dump_full_opt_onnx", "path", None, _C,
      "File name (inside the output directory) to save the whole optimized model as ONNX after cleaning.",
      nullable=True),
    P("remove_layout_transform_from_preamble", "bool", False, _C,
      "Move Transpose/Reshape layout changes at the model's start to the host, for inputs given in NHWC."),
    # -- Multi-core and scheduling ----------------------------------------------
    P("aipu_cores_used", "int", 1, _M, "Number of AIPU cores the program uses.", minimum=1, maximum=4),
    P("multicore_mode", "enum", MulticoreMode.MULTIPROCESS, _M,
      "How cores share work: `batch`, `cooperative` and `pipeline` partition the program at compile time; "
      "`multiprocess` and `multithread` choose how the host runtime drives independent cores.",
      enum=MulticoreMode),
    P("pipeline_spatial_tiles", "bool", True, _M,
      "Software-pipeline the tasks of consecutive height tiles (load tile n+1 while computing tile n)."),
    P("pipeline_channel_tiles", "bool", True, _M,
      "Software-pipeline the tasks of consecutive output-channel tiles."),
    P("inter_operator_async", "bool", True, _M,
      "Let a layer's first tasks start as soon as their inputs are ready instead of after the whole previous layer."),
    P("use_list_scheduler", "bool", False, _M,
      "Order tasks with a resource-aware list scheduler over the units and DMA channels instead of program order."),
    P("unroll_prologue_epilogue", "bool", False, _M,
      "Emit the prologue and epilogue of pipelined tile loops as separate tasks to expose more overlap."),
    P("use_hw_tokens", "bool", True, _M,
      "Synchronise units with hardware tokens; when false, software polling costs cycles at every wait."),
    P("group_ifdw_tasks", "bool", False, _M,
      "Hoist IMC weight-set loads earlier in the task list so they overlap with preceding compute."),
    P("double_buffer", "bool", True, _M,
      "Double-buffer host<->device transfers so the next frame's input uploads while the current one runs."),
    P("host_processes_used", "int", 1, _M,
      "Worker processes of the host runtime in `multiprocess` mode (at most one per core used).",
      minimum=1, maximum=4),
    # -- Tiling and memory planning ---------------------------------------------
    P("max_memplan_attempts", "int", 5, _T,
      "How many times the memory planner may re-tile and retry before reporting that limits cannot be met.",
      minimum=1),
    P("max_tiling_attempts", "int", 8, _T,
      "How many tiling factors are tried per layer to make it fit L1.", minimum=1),
    P("force_h_tiling", "int", None, _T,
      "Tile every tiled layer into exactly this many height tiles instead of the chosen factor.", minimum=1,
      nullable=True),
    P("force_oc_tiling", "int", None, _T,
      "Tile every tiled layer into exactly this many output-channel tiles.", minimum=1, nullable=True),
    P("tiling_depth", "int", 1, _T,
      "How many consecutive layers may be fused into one depth-first tile schedule that keeps intermediate "
      "tiles in L1; 1 schedules layer by layer.", minimum=1, maximum=16),
    P("dfs_search_constraint", "int", None, _T,
      "Largest number of candidate groupings the depth-first search tries per layer (1 = greedy).",
      minimum=1, nullable=True),
    # -- Memory hierarchy ---------------------------------------------------------
    P("enable_buffer_promotion", "bool", True, _H,
      "Move the most-used buffers from their initial pool to L2 and L1 where they fit."),
    P("split_buffer_promotion", "bool", False, _H,
      "Promote in two rounds (L1 first, then L2) with the depth-first schedule recomputed in between."),
    P("io_memory_pool", "str", "global.ddr", _H, "Initial home of model input and output buffers.",
      choices=MEMORY_POOLS),
    P("constant_memory_pool", "str", "global.ddr", _H, "Initial home of weights, biases and other constants.",
      choices=MEMORY_POOLS),
    P("workspace_memory_pool", "str", "global.ddr", _H, "Initial home of intermediate activation buffers.",
      choices=MEMORY_POOLS),
    P("l1_constraint", "int", None, _H, "Upper bound on the L1 bytes the plan may use, below `l1_size_used`.",
      minimum=0, nullable=True, unit="bytes"),
    P("l2_constraint", "int", None, _H, "Upper bound on the L2 bytes the plan may use, below `l2_size_used`.",
      minimum=0, nullable=True, unit="bytes"),
    P("ddr_constraint", "int", None, _H, "Upper bound on the DDR bytes the plan may use, below `ddr_size_used` "
      "(`compile_report.json` `memory.levels.ddr`: `capacity_bytes`, `limited_by`).",
      minimum=0, nullable=True, unit="bytes"),
    P("l1_size_used", "int", 4 * MiB, _H, "L1 size per core as the compiler sees it (reserved part included).",
      minimum=64 * KiB, unit="bytes"),
    P("l2_size_used", "int", 32 * MiB, _H, "L2 size as the compiler sees it (reserved parts included).",
      minimum=1 * MiB, unit="bytes"),
    P("ddr_size_used", "int", 1 * GiB, _H,
      "DDR size the compiler may plan in (reserved part included): the DDR plan's limit "
      "(`memory.levels.ddr.size_bytes` and `capacity_bytes` in `compile_report.json`).",
      minimum=1 * MiB, unit="bytes"),
    P("use_sysdma", "bool", False, _H,
      "Move the DMA transfers that touch DDR (buffers the plan leaves there: weights, DPU code) with the chip's "
      "system DMA, in the scheduler's and the cycle model's resources, leaving the core DMA to L2<->L1."),
    P("dma_dual_channel", "bool", True, _H, "Use both channels of the core DMA."),
    P("page_memory", "bool", True, _H,
      "Allocate L2 and DDR in pages, so freed space is reusable without fragmentation."),
    P("elf_in_ddr", "bool", True, _H, "Keep the program image in DDR rather than in L2."),
    P("stream_tasklist", "bool", True, _H,
      "Stream the task list into its L2 slot in chunks during the run instead of loading it whole first."),
    P("dpu_constants_home", "str", "global.l2", _H,
      "Where DPU constants (LUTs, multipliers) live: kept there (never promoted) and DMA'd "
      "into each layer's L1 arena from it.",
      choices=("global.ddr", "global.l2")),
    # -- IMC and MVM --------------------------------------------------------------
    P("mvm_utilization_limit", "float", 1.0, _I,
      "Fraction of the MVM array's MACs that may be active, trading throughput for power.",
      minimum=0.125, maximum=1.0),
    P("enable_icr", "bool", True, _I,
      "In-core replication: copy the weights of a layer with few output channels into idle IMC columns and "
      "compute several x positions per pass."),
    P("icrx_force", "int", -1, _I, "Use exactly this ICR factor (-1 = choose from the IMC geometry).",
      minimum=-1, maximum=8),
    P("icrx_parallel_block_threshold", "int", 4, _I,
      "Apply ICR only to layers that occupy at most this many IMC blocks.", minimum=1, maximum=4),
    P("icrx_max_factor", "int", 8, _I, "Largest automatic ICR factor along x.", minimum=2, maximum=8),
    P("enable_swicr", "bool", True, _I,
      "Sub-word ICR: pack several pixels of a first layer with few input channels into one PWORD."),
    P("imc_double_buffer_pipeline", "bool", False, _I,
      "Overlap IMC weight-set loads with compute inside software-pipelined sections (cycle model): a task's "
      "next weight set, and the first set of a task after the same layer's previous MVM task (output-channel "
      "tiles, weight-set groups)."),
    P("imc_double_buffer_sequential", "bool", False, _I,
      "Overlap IMC weight-set loads with compute between sequential layers (cycle model): a layer's first load "
      "fills the second weight buffer while the previous layer's last MVM task computes."),
    P("dpu_allocation_algorithm", "enum", DPUAllocationAlgorithm.TRY_ALL, _I,
      "Register allocator for DPU programs; `try_all` tries the others in turn until one succeeds.",
      enum=DPUAllocationAlgorithm),
    P("softmax_neutral_value", "float", -100000.0, _I,
      "Value of the padded channel lanes of a Softmax lowered to the DPU (`apply_pword_padding`), in the "
      "units of the Softmax input; quantized onto its grid in the DPU's int32 registers. Neutral (the padded "
      "lanes' exponent is exactly 0, the real outputs equal the unpadded Softmax for every input) when it is "
      "at least 256 input steps below the int8 range, as the default is; a value closer to or inside the range "
      "counts the padded lanes in the sum and changes the probabilities (the compile warns, naming the node).",
      maximum=-1.0),
    # -- Output and paths ---------------------------------------------------------
    P("output_dir", "path", None, _O, "Directory that receives the artifacts (`-o` on the command line).",
      nullable=True, location=True),
    P("remove_output_dir", "bool", False, _O,
      "Demand an output directory that ends holding this compile only: the compile refuses to start if the "
      "directory holds anything axdrive did not write, or is `/`, a home, a mount point, the current directory "
      "or an ancestor of it, of the model or of the calibration data. Never deletes a user's file "
      "(docs/cli.md, the output directory)."),
    P("model_name", "str", "", _O,
      "Name used in logs and artifacts; plugins may contribute config presets for a model name."),
    P("save_error_artifact", "bool", False, _O,
      "On failure, write `error_artifact.zip` (the model as far as lowered, config, error, log, trace) beside "
      "the last good compile; a failure writing it is a warning, never a replacement of the compile's error."),
    P("randomize_onnx_model", "bool", True, _O,
      "Replace the weights in the error artifact's model with seeded noise, keeping structure and shapes."),
    # -- Hardware and runtime -----------------------------------------------------
    P("frequency", "int", 800_000_000, _R, "AIPU clock; converts cycles into seconds and frames per second.",
      minimum=20_000_000, maximum=800_000_000, unit="Hz"),
    P("resources_used", "float", 1.0, _R,
      "Fraction of each memory level's usable bytes the plan may take, leaving the rest to other programs.",
      exclusive_minimum=0.0, maximum=1.0),
    P("input_dmabuf", "bool", False, _R,
      "Map input buffers into device memory instead of copying them (host runtime; saves the upload)."),
    P("output_dmabuf", "bool", False, _R,
      "Map output buffers instead of copying them back (host runtime; saves the download)."),
    # -- Profiling and debugging --------------------------------------------------
    P("profiling_levels", "enum_list", (), _P,
      "Trace-line levels the simulator's profiler writes (`[B]`, `[PB]`, ...; see docs/simulator.md).",
      enum=ProfilingLevel),
    P("profiling_drop_percentile", "float", 0.25, _P,
      "Fraction of samples dropped at each end (top and bottom) when summarising repeated runs: `axdrive run` "
      "reports the per-frame host times as `host_frame_seconds` after this trim.",
      minimum=0.0, maximum=0.49),
    P("trace_tvm_passes", "bool", False, _P,
      "Write `pass_dependency_graph.json` and `pass_trace.json`: which passes ran, when, why, and why others "
      "were skipped."),
    P("propagate_span_information", "bool", True, _P,
      "Keep, on every IR node, the ONNX node names it came from, so errors, program.json and profiles name them."),
    P("model_debug_save_dir", "path", None, _P,
      "Directory for debugging dumps (`quantization_debug`: `quantization_debug.json` and "
      "`quantization_debug_model.onnx`, each written atomically); unset, they are artifacts of the output directory.",
      nullable=True, location=True),
    # -- Internal paths -----------------------------------------------------------
    P("compiler_dir", "path", None, _D,
      "Root of the compiler installation. axdrive locates its resources through the installed packages, so it "
      "only records this value in `manifest.json` under `environment` (outside `config_sha256`) for deployment "
      "tooling.", nullable=True, location=True),
    P("runtime_dir", "path", None, _D,
      "Where the host runtime lives on the deployment machine. The simulated runtime is the installed "
      "`axdrive-hw` distribution, so axdrive only records this value in `manifest.json` under `environment` "
      "(outside `config_sha256`) for deployment tooling.", nullable=True, location=True),
    P("device_dir", "path", None, _D,
      "Directory of device resources; a `target.toml` there replaces the built-in target description, in the "
      "compile (cycle model, memory sizes, DPU registers) and in `axdrive run` (recorded in `manifest.json` under "
      "`environment`, outside `config_sha256`).",
      nullable=True, location=True),
    # -- Memory layout constants --------------------------------------------------
    P("l1_size_reserved", "int", 512 * KiB, _L, "Bytes at the top of each core's L1 kept for the system.",
      minimum=0, unit="bytes"),
    P("l2_size_reserved", "int", 1_245_184, _L, "Bytes of L2 kept for the system.", minimum=0, unit="bytes"),
    P("l2_size_reserved_tasklist", "int", 1 * MiB, _L, "Bytes of L2 kept per core for its task list.",
      minimum=0, unit="bytes"),
    P("ddr_size_max", "int", 1 * GiB, _L, "Total DDR of the device; `ddr_size_used` cannot exceed it. At most "
      "1 TiB (2**40): the simulated target's 40-bit physical address space (as `l1_core0_physical_address`).",
      minimum=1 * MiB, maximum=2**40, unit="bytes"),
    P("ddr_size_reserved", "int", 32 * MiB, _L, "Bytes of DDR kept for the system; the DDR plan may not use them "
      "(`memory.levels.ddr.reserved_bytes`).", minimum=0, unit="bytes"),
    P("l1_virtual_address", "int", 206_175_207_424, _L,
      "Address of L1 in the device's virtual map; program L1 addresses are offsets from it "
      "(`compile_report.json` `memory.address_map.l1.virtual_base`).",
      minimum=0, maximum=2**48 - 1),
    P("l1_core0_physical_address", "int", 402_653_184, _L,
      "Physical address of core 0's L1 (core c's: this + c x `l1_size_used`); the simulator has no MMU, so DMA "
      "descriptors use these bases (`compile_report.json` `memory.address_map.l1.cores`).",
      minimum=0, maximum=2**40 - 1),
    P("dpu_instructions_home", "str", "default", _L,
      "Where DPU programs are stored and fetched from: with the task list (`default`: the program image, DDR "
      "with `elf_in_ddr`) or in L2; never promoted.", choices=("default", "l2")),
    P("dwpu_instructions_home", "str", "default", _L,
      "Where DWPU programs (depthwise coefficients and their requantization) are stored and fetched from: with "
      "the task list (`default`: the program image, DDR with `elf_in_ddr`) or in L2; never promoted.",
      choices=("default", "l2")),
    P("ignore_weight_buffers", "bool", True, _L,
      "Leave weight buffers out when choosing tiling factors (they stream through IMC weight sets)."),
)

BY_NAME: dict[str, P] = {p.name: p for p in PROPERTIES}
assert len(BY_NAME) == len(PROPERTIES) == 93, len(PROPERTIES)
