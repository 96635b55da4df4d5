using HwMemModel.Devices.Virtio;
using R = HwMemModel.Devices.Virtio.VirtioMmioRegister;

namespace HwMemModel.Devices.Tests.Virtio;

/// <summary>The in-memory and host-file disk images, alone and behind the device.</summary>
public sealed class BlockBackendTests
{
    private string _path = null!;

    [SetUp]
    public void SetUp() => _path = Path.Combine(Path.GetTempPath(), $"hwmem-virtio-{Guid.NewGuid():N}.img");

    [TearDown]
    public void TearDown()
    {
        if (File.Exists(_path))
        {
            File.Delete(_path);
        }
    }

    [Test]
    public void Memory_backend_refuses_out_of_range_and_read_only_writes()
    {
        var disk = new MemoryBlockBackend(1024);
        var ro = new MemoryBlockBackend(new byte[1024], readOnly: true);
        Assert.Multiple(() =>
        {
            Assert.That(disk.Read(1000, new byte[100]), Is.False);
            Assert.That(disk.Write(-1, new byte[1]), Is.False);
            Assert.That(disk.Write(1023, new byte[1]), Is.True);
            Assert.That(ro.Write(0, new byte[1]), Is.False);
            Assert.That(ro.Read(0, new byte[1024]), Is.True);
        });
    }

    [Test]
    public void File_backend_round_trips_through_the_device()
    {
        byte[] pattern = VirtioTestDriver.Pattern(4096, 42);
        using (var file = FileBlockBackend.Create(_path, 64 * 1024))
        {
            var d = new VirtioTestDriver(file);
            Assert.That(d.Reg(R.Config), Is.EqualTo(128u), "64 KiB = 128 sectors");
            d.Initialise(8);
            d.Write(d.DataOf(0), pattern);
            Assert.That(d.Do(0, VirtioBlk.TypeOut, 16, 4096), Is.EqualTo(VirtioBlk.StatusOk));
            Assert.That(d.Do(1, VirtioBlk.TypeFlush, 0, 0), Is.EqualTo(VirtioBlk.StatusOk));
            d.Fill(d.DataOf(2), 4096, 0);
            Assert.That(d.Do(2, VirtioBlk.TypeIn, 16, 4096), Is.EqualTo(VirtioBlk.StatusOk));
            Assert.That(d.Read(d.DataOf(2), 4096), Is.EqualTo(pattern));
        }

        byte[] image = File.ReadAllBytes(_path);
        Assert.That(image, Has.Length.EqualTo(64 * 1024));
        Assert.That(image.AsSpan(16 * 512, 4096).ToArray(), Is.EqualTo(pattern), "the bytes reached the host file");
        Assert.That(image.AsSpan(0, 16 * 512).ToArray(), Is.All.Zero);
    }

    [Test]
    public void Read_only_file_backend_offers_RO_and_keeps_the_file_unchanged()
    {
        byte[] original = VirtioTestDriver.Pattern(8192, 1);
        File.WriteAllBytes(_path, original);
        using (var file = new FileBlockBackend(_path, readOnly: true))
        {
            var d = new VirtioTestDriver(file);
            Assert.That(d.DeviceFeatures() & (1UL << VirtioBlk.FeatureRo), Is.Not.Zero);
            d.Initialise(8, extraFeatures: 1UL << VirtioBlk.FeatureRo);
            Assert.That(d.Do(0, VirtioBlk.TypeOut, 0, 512), Is.EqualTo(VirtioBlk.StatusIoErr));
            Assert.That(d.Do(1, VirtioBlk.TypeIn, 1, 512), Is.EqualTo(VirtioBlk.StatusOk));
            Assert.That(d.Read(d.DataOf(1), 512), Is.EqualTo(original[512..1024]));
        }

        Assert.That(File.ReadAllBytes(_path), Is.EqualTo(original));
    }

    [Test]
    public void File_backend_capacity_ignores_a_trailing_partial_sector()
    {
        File.WriteAllBytes(_path, new byte[1000]);
        using var file = new FileBlockBackend(_path);
        var d = new VirtioTestDriver(file);
        Assert.That(d.Reg(R.Config), Is.EqualTo(1u));
    }

    [Test]
    public void File_backend_after_dispose_answers_IOERR_instead_of_throwing()
    {
        var file = FileBlockBackend.Create(_path, 4096);
        var d = new VirtioTestDriver(file);
        d.Initialise(8);
        file.Dispose();
        Assert.That(d.Do(0, VirtioBlk.TypeIn, 0, 512), Is.EqualTo(VirtioBlk.StatusIoErr));
        Assert.That(d.Log.Entries, Has.Some.Contains("host I/O failed"));
    }
}
