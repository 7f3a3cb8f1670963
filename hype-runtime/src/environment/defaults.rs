//! Per-function defaults: what `#[hype::remote(cpu = "2", memory = "4Gi",
//! gpu = "nvidia-l4:1", timeout = "10m", retries = 2, spot)]` sets, carried
//! by the function ([`RemoteFn::DEFAULTS`](crate::RemoteFn::DEFAULTS)) and
//! its [`Registration`](crate::__private::Registration), and merged under a
//! call's [`RunEnvironment`] where the call is run.
//!
//! The merge is key by key, and the environment wins: a default applies
//! only when the environment says nothing about its key.
//!
//! | key | the environment "sets" it when |
//! |---|---|
//! | `cpu` | it has a request or a limit of `cpu` (`with_cpu`, `with_request`, `with_limit`) |
//! | `memory` | it has a request or a limit of `memory` |
//! | `gpu` | `with_gpu` was called, or it has a limit of `nvidia.com/gpu` |
//! | `timeout` | `with_timeout` was called (its one-hour default is not a setting) |
//! | `retries` | `with_retries` was called (the Spot default of 2 is not a setting) |
//! | `spot` | `with_spot` was called, with `true` or `false` |

use std::fmt;
use std::time::Duration;

use super::RunEnvironment;
use super::scheduling::{Gpu, NVIDIA_GPU};

/// The defaults a `#[hype::remote(…)]` attribute gives its function; the
/// macro has checked every value at compile time. Built by generated code
/// with the `const` builders; read with the accessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FunctionDefaults {
    cpu: Option<&'static str>,
    memory: Option<&'static str>,
    gpu: Option<(u32, Option<&'static str>)>,
    timeout: Option<Duration>,
    retries: Option<u32>,
    spot: Option<bool>,
}

impl FunctionDefaults {
    /// No defaults: what a function without attribute settings has.
    pub const NONE: FunctionDefaults = FunctionDefaults {
        cpu: None,
        memory: None,
        gpu: None,
        timeout: None,
        retries: None,
        spot: None,
    };

    /// With a default cpu quantity (`"2"`, `"750m"`).
    #[doc(hidden)]
    pub const fn cpu(mut self, amount: &'static str) -> Self {
        self.cpu = Some(amount);
        self
    }

    /// With a default memory quantity (`"4Gi"`).
    #[doc(hidden)]
    pub const fn memory(mut self, amount: &'static str) -> Self {
        self.memory = Some(amount);
        self
    }

    /// With `count` default NVIDIA GPUs, of `model` if given.
    #[doc(hidden)]
    pub const fn gpu(mut self, count: u32, model: Option<&'static str>) -> Self {
        self.gpu = Some((count, model));
        self
    }

    /// With a default timeout of `millis` milliseconds.
    #[doc(hidden)]
    pub const fn timeout_millis(mut self, millis: u64) -> Self {
        self.timeout = Some(Duration::from_millis(millis));
        self
    }

    /// With a default number of retries.
    #[doc(hidden)]
    pub const fn retries(mut self, n: u32) -> Self {
        self.retries = Some(n);
        self
    }

    /// With Spot on or off by default.
    #[doc(hidden)]
    pub const fn spot(mut self, spot: bool) -> Self {
        self.spot = Some(spot);
        self
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        *self == FunctionDefaults::NONE
    }

    /// The default cpu quantity, if any.
    pub fn cpu_amount(&self) -> Option<&'static str> {
        self.cpu
    }

    /// The default memory quantity, if any.
    pub fn memory_amount(&self) -> Option<&'static str> {
        self.memory
    }

    /// The default GPUs, if any.
    pub fn gpu_request(&self) -> Option<Gpu> {
        self.gpu.map(|(count, model)| match model {
            Some(model) => Gpu::nvidia(count).model(model),
            None => Gpu::nvidia(count),
        })
    }

    /// The default timeout, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The default number of retries, if any.
    pub fn retry_count(&self) -> Option<u32> {
        self.retries
    }

    /// The default Spot setting, if any.
    pub fn is_spot(&self) -> Option<bool> {
        self.spot
    }
}

/// The stable text form `hype-run --list` prints: the keys set, in the
/// order `cpu memory gpu timeout retries spot`, as `key=value` separated by
/// spaces; `gpu` as `MODEL:COUNT` or `COUNT`, `timeout` in the largest
/// unit that is exact (`10m`, `90s`, `1500ms`). Empty when nothing is set.
impl fmt::Display for FunctionDefaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(cpu) = self.cpu {
            parts.push(format!("cpu={cpu}"));
        }
        if let Some(memory) = self.memory {
            parts.push(format!("memory={memory}"));
        }
        if let Some((count, model)) = self.gpu {
            parts.push(match model {
                Some(model) => format!("gpu={model}:{count}"),
                None => format!("gpu={count}"),
            });
        }
        if let Some(timeout) = self.timeout {
            parts.push(format!("timeout={}", duration_text(timeout)));
        }
        if let Some(retries) = self.retries {
            parts.push(format!("retries={retries}"));
        }
        if let Some(spot) = self.spot {
            parts.push(format!("spot={spot}"));
        }
        f.write_str(&parts.join(" "))
    }
}

/// A duration in the largest unit (`h`, `m`, `s`, `ms`) that states it exactly.
fn duration_text(duration: Duration) -> String {
    let millis = duration.as_millis();
    if !millis.is_multiple_of(1000) {
        format!("{millis}ms")
    } else if !millis.is_multiple_of(60_000) {
        format!("{}s", millis / 1000)
    } else if !millis.is_multiple_of(3_600_000) {
        format!("{}m", millis / 60_000)
    } else {
        format!("{}h", millis / 3_600_000)
    }
}

impl RunEnvironment {
    /// This environment with `defaults` under it: each key of `defaults`
    /// applies only where this environment does not set it (see the module
    /// docs for what "sets" means per key). Called where a call is run.
    pub(crate) fn with_function_defaults(self, defaults: &FunctionDefaults) -> RunEnvironment {
        if defaults.is_empty() {
            return self;
        }
        let sets = |resource: &str| {
            self.requests().contains_key(resource) || self.limits().contains_key(resource)
        };
        let (cpu, memory) = (
            defaults.cpu.filter(|_| !sets("cpu")),
            defaults.memory.filter(|_| !sets("memory")),
        );
        let gpu = defaults
            .gpu_request()
            .filter(|_| self.gpu().is_none() && !self.limits().contains_key(NVIDIA_GPU));
        let mut env = self;
        if let Some(cpu) = cpu {
            env = env.with_cpu(cpu);
        }
        if let Some(memory) = memory {
            env = env.with_memory(memory);
        }
        if let Some(gpu) = gpu {
            env = env.with_gpu(gpu);
        }
        env.with(|s| {
            s.timeout = s.timeout.or(defaults.timeout);
            s.retries = s.retries.or(defaults.retries);
            s.spot = s.spot.or(defaults.spot);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: FunctionDefaults = FunctionDefaults::NONE
        .cpu("2")
        .memory("4Gi")
        .gpu(1, Some("nvidia-l4"))
        .timeout_millis(600_000)
        .retries(3)
        .spot(true);

    #[test]
    fn the_text_form_is_stable() {
        assert_eq!(
            ALL.to_string(),
            "cpu=2 memory=4Gi gpu=nvidia-l4:1 timeout=10m retries=3 spot=true"
        );
        assert_eq!(FunctionDefaults::NONE.to_string(), "");
        assert!(FunctionDefaults::NONE.is_empty() && !ALL.is_empty());
        let some = FunctionDefaults::NONE
            .gpu(2, None)
            .timeout_millis(1500)
            .spot(false);
        assert_eq!(some.to_string(), "gpu=2 timeout=1500ms spot=false");
        for (millis, text) in [(90_000, "90s"), (3_600_000, "1h"), (5_400_000, "90m")] {
            assert_eq!(duration_text(Duration::from_millis(millis)), text);
        }
    }

    #[test]
    fn an_empty_environment_takes_every_default() {
        let env = RunEnvironment::local().with_function_defaults(&ALL);
        assert_eq!(env.requests()["cpu"], "2");
        assert_eq!(env.limits()["cpu"], "2");
        assert_eq!(env.requests()["memory"], "4Gi");
        assert_eq!(env.limits()["memory"], "4Gi");
        let gpu = env.gpu().expect("the gpu default");
        assert_eq!((gpu.count(), gpu.model_name()), (1, Some("nvidia-l4")));
        assert_eq!(env.timeout(), Duration::from_secs(600));
        assert_eq!(env.retries(), 3);
        assert!(env.is_spot());
    }

    #[test]
    fn the_environment_wins_key_by_key() {
        let env = RunEnvironment::local()
            .with_cpu("4")
            .with_timeout(Duration::from_secs(5))
            .with_function_defaults(&ALL);
        assert_eq!(env.requests()["cpu"], "4", "the env's cpu");
        assert_eq!(env.limits()["cpu"], "4");
        assert_eq!(env.requests()["memory"], "4Gi", "the function's memory");
        assert_eq!(env.timeout(), Duration::from_secs(5));
        assert_eq!(env.retries(), 3);

        // A request alone says the env sets memory: no default limit is added.
        let env = RunEnvironment::local()
            .with_request("memory", "1Gi")
            .with_limit("nvidia.com/gpu", "2")
            .with_spot(false)
            .with_retries(0)
            .with_function_defaults(&ALL);
        assert_eq!(env.requests()["memory"], "1Gi");
        assert!(!env.limits().contains_key("memory"));
        assert!(env.gpu().is_none(), "a gpu limit is the env's gpu");
        assert!(!env.is_spot(), "with_spot(false) wins over spot");
        assert_eq!(env.retries(), 0, "with_retries(0) wins over retries = 3");

        let env = RunEnvironment::local()
            .with_gpu(Gpu::nvidia(4))
            .with_function_defaults(&ALL);
        assert_eq!(env.gpu().map(Gpu::count), Some(4));
    }

    #[test]
    fn unset_timeout_retries_and_spot_are_not_settings() {
        // The one-hour timeout and Spot's two retries are fallbacks, so the
        // function's defaults replace them.
        let env = RunEnvironment::local()
            .with_spot(true)
            .with_function_defaults(&FunctionDefaults::NONE.retries(1).timeout_millis(30_000));
        assert_eq!(env.retries(), 1);
        assert_eq!(env.timeout(), Duration::from_secs(30));
        let env =
            RunEnvironment::local().with_function_defaults(&FunctionDefaults::NONE.spot(true));
        assert_eq!(
            env.retries(),
            SPOT_RETRIES,
            "spot's own retry default still applies"
        );
        let untouched = RunEnvironment::local().with_function_defaults(&FunctionDefaults::NONE);
        assert_eq!(untouched.timeout(), super::super::DEFAULT_TIMEOUT);
        assert_eq!(untouched.retries(), 0);
    }

    const SPOT_RETRIES: u32 = super::super::SPOT_DEFAULT_RETRIES;
}
