// Two phones of one cadre through the generated Kotlin bindings, against a
// real `server serve --demo`; and a sync cancelled by a coroutine timeout.

import java.io.File
import java.nio.file.Files
import java.security.SecureRandom
import java.util.UUID
import java.util.concurrent.TimeUnit
import kotlin.random.Random
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeoutOrNull
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import uniffi.mobile_ffi.ClientConfig
import uniffi.mobile_ffi.DiaryClient
import uniffi.mobile_ffi.NewVisit
import uniffi.mobile_ffi.SixAnswers
import uniffi.mobile_ffi.SubjectKind
import uniffi.mobile_ffi.SyncReport
import uniffi.mobile_ffi.VisitEdit
import uniffi.mobile_ffi.VisitKind
import uniffi.mobile_ffi.VisitQuery

const val CADRE = "cadre01"
const val DEMO_PASSWORD = "demo-pass"
const val SYNC_DEADLINE_MS: ULong = 30_000uL

/** 2026-05-28 10:00 Beijing: a fixed day, so visits land in the 2026 diary. */
const val VISIT_AT_MS = 1_779_933_600_000L

/** `server serve --demo --port 0` in a fresh data directory. */
class Server : AutoCloseable {
    private val dataDir: File = Files.createTempDirectory("kt-e2e-server-").toFile()
    private val process: Process
    val url: String

    init {
        val bin = System.getenv("SERVER_BIN") ?: error("SERVER_BIN is not set (run ../run-kotlin.sh)")
        val builder = ProcessBuilder(bin, "serve", "--demo", "--port", "0", "--data-dir", dataDir.path)
            .redirectError(File(dataDir, "server.log"))
        val env = builder.environment()
        env.keys.removeIf { it == "DATABASE_URL" || it == "JWT_SECRET" || it.startsWith("VISIT_DIARY_") }
        env["RUST_LOG"] = "warn"
        process = builder.start()
        val lines = process.inputStream.bufferedReader()
        var found: String? = null
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60)
        while (found == null && System.nanoTime() < deadline) {
            val line = lines.readLine() ?: break
            found = line.substringAfter("listening on http://", "").split(" ").first().trimEnd('/')
                .takeIf { it.isNotEmpty() }
        }
        url = "http://" + (found ?: error("the server printed no 'listening on' banner"))
        // Keep draining stdout so the server never blocks on a full pipe.
        Thread { lines.forEachLine { } }.apply { isDaemon = true }.start()
    }

    override fun close() {
        process.destroyForcibly().waitFor()
        dataDir.deleteRecursively()
    }
}

/** One installation of the app: its own data directory and device id. */
class Phone(private val serverUrl: String, name: String) : AutoCloseable {
    val dir: File = Files.createTempDirectory("kt-e2e-$name-").toFile()
    private val deviceId = "$name-${UUID.randomUUID().toString().take(8)}"
    var client: DiaryClient = open()

    fun open(): DiaryClient = DiaryClient.open(ClientConfig(dataDir = dir.path, serverUrl = serverUrl, deviceId = deviceId))

    /** Closes the client and opens the same store again, as after an app restart. */
    fun restart() {
        client.close()
        client = open()
    }

    suspend fun sync(): SyncReport {
        val report = client.syncNow(SYNC_DEADLINE_MS)
        assertNull(report.error, "sync failed: ${report.error} ${report.errorMessage}")
        return report
    }

    fun visitIds(): Set<String> = client.listVisits(VisitQuery(limit = 10_000u)).map { it.id }.toSet()

    override fun close() {
        client.close()
        dir.deleteRecursively()
    }
}

fun homeVisit(place: String, name: String, notes: String = "") = NewVisit(
    kind = VisitKind.HOME_VISIT,
    atMs = VISIT_AT_MS,
    place = place,
    subjectKind = SubjectKind.HOUSEHOLD,
    subjectName = name,
    answers = SixAnswers(
        basicSituation = "家中三口人，女儿在外地读大学。",
        difficulties = "房屋漏雨，需要修缮。",
        incomeWishes = "想学电商卖土特产。",
        opinionOfCadres = "干部常来，问题能反映上去。",
        workSuggestions = "希望村里办技能培训。",
        developmentIdeas = "发展乡村旅游。",
    ),
    notes = notes,
)

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class TwoPhonesTest {
    private lateinit var server: Server

    @BeforeAll
    fun start() {
        server = Server()
    }

    @AfterAll
    fun stop() {
        server.close()
    }

    @Test
    fun twoPhonesRecordOfflineAndBothSeeBothEdits() = runBlocking {
        Phone(server.url, "kt-a").use { a ->
            Phone(server.url, "kt-b").use { b ->
                a.client.login(CADRE, DEMO_PASSWORD)
                b.client.login(CADRE, DEMO_PASSWORD)
                val fromA = a.client.addVisit(homeVisit("柳树村三组", "王秀英", "初次走访。"))
                val fromB = b.client.addVisit(homeVisit("柳树村五组", "李国强"))
                a.sync()
                b.sync()
                a.sync()
                assertEquals(setOf(fromA.id, fromB.id), a.visitIds() intersect setOf(fromA.id, fromB.id))
                assertEquals(a.visitIds(), b.visitIds())

                // Both offline, both add to the same visit's notes.
                a.client.editVisit(fromA.id, VisitEdit(notes = "初次走访。手机甲：已联系镇卫生院。"))
                b.client.editVisit(fromA.id, VisitEdit(notes = "平板乙：屋顶维修已报村委。初次走访。"))
                a.sync()
                b.sync()
                a.sync()
                for (phone in listOf(a, b)) {
                    val notes = phone.client.visit(fromA.id).notes
                    assertTrue("手机甲：已联系镇卫生院。" in notes, notes)
                    assertTrue("平板乙：屋顶维修已报村委。" in notes, notes)
                }
                assertEquals(a.client.visit(fromA.id).notes, b.client.visit(fromA.id).notes)
            }
        }
    }

    @Test
    fun theGuidesSnippetsRecordAndSync() = runBlocking {
        val dir = Files.createTempDirectory("kt-guide-").toFile()
        try {
            val (client, visit) = GuideSnippets.openLogInAndRecord(
                dir, server.url, "guide-${UUID.randomUUID()}",
                ByteArray(32).also { SecureRandom().nextBytes(it) }.joinToString("") { "%02x".format(it) },
                DEMO_PASSWORD)
            client.use {
                assertEquals(GuideSnippets.WorkResult.SUCCESS, GuideSnippets.doWork(it))
                assertEquals("柳树村三组", it.visit(visit.id).place)
            }
        } finally {
            dir.deleteRecursively()
        }
    }

    @Test
    fun aSyncCancelledByACoroutineTimeoutLeavesTheStoreConsistent() = runBlocking {
        Phone(server.url, "kt-cancel").use { phone ->
            phone.client.login(CADRE, DEMO_PASSWORD)
            val recorded = (1..30).map { n ->
                phone.client.addVisit(homeVisit("石桥村${n}组", "住户$n", "第${n}户走访记录。")).id
            }.toSet()
            // Cut off at several points, early and late.
            var cancelled = 0
            for (ms in listOf(1L, 5L, 20L) + List(4) { Random.nextLong(1, 300) }) {
                if (withTimeoutOrNull(ms) { phone.client.syncNow(SYNC_DEADLINE_MS) } == null) {
                    cancelled++
                }
                phone.restart()
                assertTrue(phone.visitIds().containsAll(recorded), "nothing recorded is lost")
            }
            assertTrue(cancelled > 0, "at least one sync was cut off")
            phone.sync()
            val status = phone.client.syncStatus()
            assertTrue(status.lastSuccessMs != null)

            // Everything reached the server: a fresh installation gets it all.
            Phone(server.url, "kt-fresh").use { fresh ->
                fresh.client.login(CADRE, DEMO_PASSWORD)
                fresh.sync()
                assertTrue(fresh.visitIds().containsAll(recorded))
            }
        }
    }
}
