// The Kotlin snippets of mobile-ffi/README.md, compiled against the generated
// API. Android types (Context, CoroutineWorker, Result) are replaced by plain
// parameters and a small enum; everything that touches the library is as in
// the guide. TwoPhonesTest runs them against a real server.

import java.io.File
import uniffi.mobile_ffi.ClientConfig
import uniffi.mobile_ffi.DiaryClient
import uniffi.mobile_ffi.NewVisit
import uniffi.mobile_ffi.SixAnswers
import uniffi.mobile_ffi.SubjectKind
import uniffi.mobile_ffi.SyncErrorKind
import uniffi.mobile_ffi.Visit
import uniffi.mobile_ffi.VisitKind

object GuideSnippets {
    /** "Using it": open the client once, log in, record a visit. */
    suspend fun openLogInAndRecord(
        filesDir: File,
        serverUrl: String,
        installationId: String,
        atRestKey: String,
        password: String,
    ): Pair<DiaryClient, Visit> {
        val client = DiaryClient.open(ClientConfig(
            dataDir = filesDir.resolve("diary").path,
            serverUrl = serverUrl,
            deviceId = installationId,          // a UUID made once per installation
            atRestKey = atRestKey,              // see "The at-rest key"
        ))
        client.login("cadre01", password)       // suspend; stores the tokens
        val visit = client.addVisit(NewVisit(
            kind = VisitKind.HOME_VISIT, atMs = System.currentTimeMillis(), place = "柳树村三组",
            subjectKind = SubjectKind.HOUSEHOLD, subjectName = "王秀英", subjectAddress = null,
            tags = listOf("needy"), participants = listOf(), answers = SixAnswers(
                basicSituation = "家中四口人…", difficulties = "看病远", incomeWishes = "",
                opinionOfCadres = "", workSuggestions = "", developmentIdeas = ""),
            notes = "", latitude = null, longitude = null, aidMoneyFen = 0, aidGoods = "",
            resolvedOnSpot = listOf()))
        return client to visit
    }

    /** What a WorkManager worker answers (`Result.success()` and so on). */
    enum class WorkResult { SUCCESS, RETRY, FAILURE }

    /** "Background sync: WorkManager": the body of `SyncWorker.doWork`. */
    suspend fun doWork(client: DiaryClient): WorkResult {
        // WorkManager gives a worker about 10 minutes; stay well inside it.
        val report = client.syncNow(120_000uL)
        return when (report.error) {
            null -> WorkResult.SUCCESS
            SyncErrorKind.OFFLINE, SyncErrorKind.DEADLINE, SyncErrorKind.SERVER_REFUSED -> WorkResult.RETRY
            SyncErrorKind.UNAUTHORISED, SyncErrorKind.NOT_LOGGED_IN -> WorkResult.FAILURE // show "log in again"
            else -> WorkResult.FAILURE
        }
    }
}
