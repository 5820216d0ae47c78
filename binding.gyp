{
  # uffd_sanitize: "address" or "thread" builds the addon with that sanitizer and symbols
  # (scripts/sanitize.sh, docs/development.md); "" (the default) is the release build.
  "variables": { "uffd_sanitize%": "" },
  "targets": [
    {
      "target_name": "userfaultfd",
      "conditions": [
        ["OS=='linux'", {
          "sources": [
            "native/addon.cc",
            "native/uffd/errors.cc",
            "native/uffd/userfaultfd.cc",
            "native/reader/fault_reader.cc",
            "native/reader/cpu_sharing.cc",
            "native/reader/loop_reader.cc",
            "native/sources/page_source.cc",
            "native/sources/served_layout.cc",
            "native/sources/sparse_source.cc",
            "native/memory/region.cc",
            "native/fdpass/fdpass.cc",
            "native/reader/sync_reader.cc",
            "native/uffd/fast_ioctl.cc",
            "native/sources/working_set.cc",
            "native/sources/prefetcher.cc",
            "native/sources/demand_gate.cc",
            "native/sources/set_fill.cc",
            "native/sources/set_order.cc",
            "native/sources/set_file.cc",
            "native/sources/set_pages.cc",
            "native/reader/local_uffds.cc",
            "native/reader/reader_claims.cc",
            "native/tracking/dirty_tracker.cc",
            "native/tracking/snapshot_writer.cc",
            "native/reader/teardown_registry.cc",
            "native/sources/source_args.cc",
            "native/sources/shared_image.cc",
            "native/sources/image_prefetcher.cc",
            "native/memory/image_object.cc",
            "native/fdpass/fd_message.cc",
            "native/fdpass/image_client.cc",
            "native/reader/fork_guard.cc"
          ]
        }, {
          # Elsewhere the package installs with an empty addon and runs on the simulator.
          "sources": ["native/unsupported.cc"]
        }],
        ["uffd_sanitize=='address'", {
          "cflags_cc": ["-fsanitize=address", "-fno-omit-frame-pointer", "-g", "-O1"],
          "ldflags": ["-fsanitize=address"]
        }],
        ["uffd_sanitize=='thread'", {
          "cflags_cc": ["-fsanitize=thread", "-g", "-O1"],
          "ldflags": ["-fsanitize=thread"]
        }]
      ],
      # Includes name their folder from native/ ("reader/fault_reader.h"), so a reader sees the part.
      "include_dirs": ["native", "<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "xcode_settings": { "GCC_ENABLE_CPP_EXCEPTIONS": "YES" },
      "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1 } }
    }
  ]
}
