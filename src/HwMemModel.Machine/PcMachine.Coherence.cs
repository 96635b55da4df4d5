using HwMemModel.Mmu;

namespace HwMemModel.Machine;

/// <content>The cross-CPU coherence checker of a machine (<see cref="PcMachineOptions.CoherenceChecking"/>).</content>
public sealed partial class PcMachine
{
    /// <summary>The shared write log of the coherence checker; null when checking is off.</summary>
    public PagingWriteLog? CoherenceLog { get; private set; }

    /// <summary>Stale translations every CPU found, in the order they were found (empty when checking is off).</summary>
    public IReadOnlyList<StaleTranslationEvent> StaleTranslations => _staleTranslations;

    private readonly List<StaleTranslationEvent> _staleTranslations = [];

    private void EnableCoherenceChecking()
    {
        var log = new PagingWriteLog(Bus) { DescribeCpu = id => id >= 0 && id < _cpus.Count ? _cpus[id].CurrentPosition() : null };
        CoherenceLog = log;
        foreach (var cpu in _cpus)
        {
            var mmu = cpu.Context.Mmu;
            mmu.WriteLog = log;
            mmu.CoherenceChecking = true;
            mmu.StaleTranslationDetected += e => { if (_staleTranslations.Count < 10_000) _staleTranslations.Add(e); };
        }
    }
}
